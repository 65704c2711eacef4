"""OpenTelemetry through the CLI: a run with ``otel.enabled`` whose target sends no spans (the
sample answers with Server-Timing only) reports every answered request as lost, keeps the
header's telemetry, and a corrupted ``traces.parquet`` is one clear message and exit 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import run_cli

SHORT = """
name: otel-short
target:
  services:
    api:
      command: "{python} -m targets.sample"
      startup_timeout: 20s
traffic: {model: open, rate: 20, warmup: 1s, duration: 3s}
requests:
  - {name: GET /cheap, path: /cheap}
otel: {enabled: true, grace: 1s}
"""


def test_a_target_without_spans_loses_every_trace_and_a_corrupt_traces_file_is_exit_2(
    scenario_file: Callable[..., Path], run_dir: Path
) -> None:
    done = run_cli("run", scenario_file(SHORT), "--output", run_dir)
    assert done.returncode == 0, done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    otel = summary["telemetry"]["otel"]
    assert otel["requests_traced"] > 40 and otel["spans"] == 0
    assert otel["lost_requests"] == otel["requests_traced"]
    assert summary["telemetry"]["sources"]["server-timing"] == summary["requests"]
    assert f"lost {otel['lost_requests']:,}," in done.stdout
    assert any("have no trace" in note for note in summary["notes"])

    (run_dir / "traces.parquet").write_bytes(b"PAR1\x00garbage")
    bad = run_cli("report", run_dir)
    assert bad.returncode == 2
    assert "traces.parquet: truncated or not a Parquet file" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_otel_on_the_docker_runtime_is_refused_with_one_clear_message(
    scenario_file: Callable[..., Path], run_dir: Path
) -> None:
    done = run_cli("run", scenario_file(SHORT), "--runtime", "docker", "--output", run_dir)
    assert done.returncode == 2
    assert "otel.enabled runs on the local runtime only (docs/otel.md)" in done.stderr
    assert "Traceback" not in done.stderr


LOCUSTFILE = """
from locust import FastHttpUser, constant, task


class Browse(FastHttpUser):
    wait_time = constant(0.05)

    @task
    def cheap(self):
        self.client.get("/cheap", name="GET /cheap")
"""


def test_a_locustfile_s_requests_carry_a_traceparent_too(
    scenario_file: Callable[..., Path], run_dir: Path
) -> None:
    import pyarrow.parquet as pq

    locustfile = scenario_file(LOCUSTFILE, "browse.py")
    text = SHORT.replace("traffic: {model: open, rate: 20, warmup: 1s, duration: 3s}",
                         "traffic: {model: closed, users: 2, warmup: 1s, duration: 3s}")
    text = text.replace("requests:\n  - {name: GET /cheap, path: /cheap}",
                        f"locustfile: {locustfile}")  # fmt: skip
    assert "locustfile:" in text and "requests:" not in text and "closed" in text
    done = run_cli("run", scenario_file(text, "locust.yaml"), "--output", run_dir)
    assert done.returncode == 0, done.stderr
    ids = pq.read_table(run_dir / "requests.parquet")["trace_id"].to_pylist()
    assert len(ids) > 20 and all(i is not None and len(i) == 32 for i in ids)
    assert len(set(ids)) == len(ids)
    otel = json.loads((run_dir / "summary.json").read_text())["telemetry"]["otel"]
    assert otel["requests_traced"] == len(ids) == otel["lost_requests"]  # the sample: no spans
