"""Loading run directories: dtypes, priced windows, crashed and foreign artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from artifact_factory import request, samples, service, write_run

from harness.artifacts import MANIFEST, REQUESTS, USAGE
from harness.artifacts.rundata import FALLBACK_PHASE, load_run
from harness.errors import ArtifactError

PHASES = (("warmup", 0.0, 5.0, False), ("steady", 5.0, 15.0, True), ("fault", 15.0, 25.0, True))


def _run(tmp_path: Path) -> Path:
    requests = [
        request(1.0, phase="warmup"),
        request(6.0, "/a", tenant="acme", cpu_ms=1.5, db_reads=2),
        request(16.0, "/b", phase="fault", status=0, error="timeout"),
    ]
    usage = samples("api", [0, 1, 2], [0.0, 0.5, 1.0])
    return write_run(tmp_path / "run", requests, usage, [service("api", entry=True)], PHASES)


def test_dtypes_follow_the_schema(tmp_path: Path) -> None:
    run = load_run(_run(tmp_path))
    req = run.requests
    for column in ("endpoint", "phase", "replica", "tenant", "variant", "method", "external"):
        assert str(req[column].dtype) == "category", column
    assert str(req["status"].dtype) == "int32"
    assert str(req["db_reads"].dtype) == "float64" and req["db_reads"].isna().sum() == 2
    assert str(run.usage["alive"].dtype) == "bool"
    assert "bytes_in" not in req.columns  # only the columns analysis needs
    assert run.notes == () and run.faults == []


def test_priced_requests_and_windows(tmp_path: Path) -> None:
    run = load_run(_run(tmp_path))
    assert list(run.priced_requests["phase"].astype(str)) == ["steady", "fault"]
    assert [(w.name, w.start, w.end) for w in run.priced_windows] == [
        ("steady", 5.0, 15.0),
        ("fault", 15.0, 25.0),
    ]
    assert run.duration_s == 20.0


def test_open_phase_ends_at_next_phase_then_run_end(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    raw = json.loads((run_dir / MANIFEST).read_text())
    raw["phases"][1]["end"] = None
    raw["phases"][2]["end"] = None
    raw["ended_at"] = 30.0
    (run_dir / MANIFEST).write_text(json.dumps(raw))
    run = load_run(run_dir)
    assert [(w.start, w.end) for w in run.priced_windows] == [(5.0, 15.0), (15.0, 30.0)]


def test_manifest_without_phases_prices_everything_as_one_window(tmp_path: Path) -> None:
    run_dir = write_run(
        tmp_path / "run", [request(3.0, phase="steady")], None, phases=(), ended_at=None
    )
    run = load_run(run_dir)
    assert [(w.name, w.start, w.end) for w in run.priced_windows] == [(FALLBACK_PHASE, 0.0, 3.0)]
    assert list(run.priced_requests["phase"]) == [FALLBACK_PHASE]


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_missing_or_empty_parquet_loads_as_zero_rows(tmp_path: Path, state: str) -> None:
    run_dir = _run(tmp_path)
    if state == "missing":
        (run_dir / REQUESTS).unlink()
    else:
        (run_dir / REQUESTS).write_bytes(b"")
    run = load_run(run_dir)
    assert len(run.requests) == 0 and len(run.priced_requests) == 0
    assert list(run.requests.columns)[:3] == ["start", "latency_ms", "endpoint"]
    assert any(REQUESTS in note for note in run.notes)


def test_truncated_parquet_names_the_file(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    data = (run_dir / USAGE).read_bytes()
    (run_dir / USAGE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=r"usage.parquet: truncated or not a Parquet file"):
        load_run(run_dir)


def test_foreign_parquet_names_file_and_column(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    pq.write_table(pa.table({"start": [1.0], "latency": [2.0]}), run_dir / REQUESTS)
    with pytest.raises(ArtifactError, match=r"requests.parquet: column 'latency_ms' is missing"):
        load_run(run_dir)
    table = pq.read_table(run_dir / USAGE)
    table = table.set_column(table.schema.get_field_index("cpu_s"), "cpu_s",
                             table.column("cpu_s").cast(pa.string()))  # fmt: skip
    pq.write_table(table, run_dir / USAGE)
    (run_dir / REQUESTS).unlink()
    with pytest.raises(ArtifactError, match=r"usage.parquet: column 'cpu_s' has type string"):
        load_run(run_dir)


def test_foreign_schema_version(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    raw = json.loads((run_dir / MANIFEST).read_text())
    raw["schema_version"] = 99
    (run_dir / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="schema_version 99 is not 1"):
        load_run(run_dir)


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a run directory"):
        load_run(tmp_path / "nothing")


def test_faults_jsonl_skips_a_cut_last_line_only(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    good = json.dumps({"fault": "kill", "status": "reverted"})
    (run_dir / "faults.jsonl").write_text(f'{good}\n{good}\n{{"fault": "ki', encoding="utf-8")
    assert len(load_run(run_dir).faults) == 2
    (run_dir / "faults.jsonl").write_text(f"{good}\nnot json\n{good}\n", encoding="utf-8")
    with pytest.raises(ArtifactError, match="faults.jsonl: line 2 is not JSON"):
        load_run(run_dir)
