"""The recorder's event hook and batch columns: FastHttpUser headers read without case folding,
repeated headers joined, other response types through ``get``, each record's telemetry parsed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow.parquet as pq
from geventhttpclient.header import Headers

from harness.traffic.recorder import PhaseClock, Recorder


def _event(response: Any, **extra: Any) -> dict[str, Any]:
    return {"request_type": "GET", "name": "ep", "response_time": 12.5, "response_length": 7,
            "response": response, "context": {"bytes_in": 3, "tenant": "t1"},
            "exception": None, "start_time": 1000.0} | extra


def test_headers_of_both_response_kinds_give_the_same_record(tmp_path: Path) -> None:
    fast = Headers()
    fast["Server-Timing"] = "cpu;dur=2.5"
    fast.add("server-timing", 'db;desc="r=3 w=1"')  # repeated: joined like one header
    fast["X-Served-By"] = "api-2"
    fast["Content-Length"] = "123"
    plain = {"server-timing": 'cpu;dur=2.5, db;desc="r=3 w=1"', "x-served-by": "api-2",
             "content-length": "123"}
    clock = PhaseClock()
    clock.current = "baseline"
    rec = Recorder(tmp_path / "requests.parquet", clock, "v1")
    rec.on_request(**_event(SimpleNamespace(headers=fast, status_code=200)))
    rec.on_request(**_event(SimpleNamespace(headers=plain, status_code=200)))
    rec.on_request(**_event(None, exception=ConnectionError("refused")))
    assert rec.close() == 3
    rows = pq.read_table(tmp_path / "requests.parquet").to_pylist()
    assert rows[0] == rows[1]
    assert (rows[0]["cpu_ms"], rows[0]["db_reads"], rows[0]["db_writes"]) == (2.5, 3, 1)
    first = rows[0]
    assert (first["replica"], first["bytes_out"], first["phase"]) == ("api-2", 123, "baseline")
    assert (rows[0]["end"], rows[0]["tenant"], rows[0]["variant"]) == (1000.0125, "t1", "v1")
    failed = rows[2]
    assert (failed["status"], failed["error"], failed["bytes_out"]) == (0, "refused", 7)
    assert failed["cpu_ms"] is None and failed["telemetry_malformed"] is False
    assert rec.errors == 1


def test_malformed_and_missing_telemetry_in_one_batch(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "requests.parquet", PhaseClock(), "v")
    headers_seen = ["cpu;dur=1", None, 'cache;desc="hit=2 miss=x', "cpu;dur=1", 'ext;desc="pay=2"']
    for timing in headers_seen:
        headers = Headers()
        if timing is not None:
            headers["Server-Timing"] = timing
        rec.on_request(**_event(SimpleNamespace(headers=headers, status_code=200)))
    rec.close()
    table = pq.read_table(tmp_path / "requests.parquet").to_pydict()
    assert table["cpu_ms"] == [1.0, None, None, 1.0, None]
    assert table["telemetry_malformed"] == [False, False, True, False, False]
    assert table["external"] == [None, None, None, None, "pay=2"]
    assert table["external_calls"] == [None, None, None, None, 2]
    assert table["bytes_out"] == [7] * 5


def test_a_shipping_recorder_leaves_no_parts_behind(tmp_path: Path) -> None:
    shipped: list[list[object]] = []
    rec = Recorder(tmp_path / "requests.parquet", PhaseClock(), "v", sink=shipped.append)
    headers = Headers()
    headers["Server-Timing"] = "cpu;dur=2"
    rec.on_request(**_event(SimpleNamespace(headers=headers, status_code=200)))
    assert rec.close() == 1
    assert len(shipped) == 1 and len(shipped[0]) == 1
    assert list(tmp_path.iterdir()) == []  # a remote worker writes nothing where it runs


def test_records_reporting_cpu_are_counted_for_mix_auto(tmp_path: Path) -> None:
    from harness.traffic.design import reports_cpu

    assert reports_cpu("cpu;dur=1.5") and reports_cpu('db;desc="r=1", cpu;dur=2')
    assert not reports_cpu('db;desc="cpu=1"') and not reports_cpu(None)
    assert not reports_cpu("cpuish;dur=1")
    rec = Recorder(tmp_path / "requests.parquet", PhaseClock(), "v")
    for _ in range(3):
        rec.on_request(**_event(SimpleNamespace(headers={}, status_code=200)))
    rec.flush()
    assert rec.cpu_reported == 0
    rec.on_request(**_event(SimpleNamespace(headers={"server-timing": "cpu;dur=1"},
                                            status_code=200)))
    rec.flush()
    assert rec.cpu_reported == 1
    rec.close()


def test_the_trace_id_of_the_context_is_recorded_and_the_header_names_the_source(
    tmp_path: Path,
) -> None:
    timed = Headers()
    timed["Server-Timing"] = "cpu;dur=1.5"
    cdn = Headers()
    cdn["Server-Timing"] = "cdn-cache;desc=HIT"  # no harness field: not a telemetry source
    rec = Recorder(tmp_path / "requests.parquet", PhaseClock(), "v1")
    context = {"bytes_in": 0, "tenant": None, "trace_id": "ab" * 16}
    rec.on_request(**_event(SimpleNamespace(headers=timed, status_code=200), context=context))
    rec.on_request(**_event(SimpleNamespace(headers=cdn, status_code=200)))
    rec.close()
    rows = pq.read_table(tmp_path / "requests.parquet").to_pylist()
    assert (rows[0]["trace_id"], rows[0]["telemetry_source"]) == ("ab" * 16, "server-timing")
    assert (rows[1]["trace_id"], rows[1]["telemetry_source"]) == (None, None)
    assert rows[0]["cache_ops"] is None and rows[0]["server_ms"] is None
