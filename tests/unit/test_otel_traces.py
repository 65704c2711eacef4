"""Per-trace aggregation: what each span counts for, the SERVER span's duration, eviction of
idle traces into parts and their merge into one row per trace id."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from harness.artifacts.traces import read_traces
from harness.errors import ArtifactError
from harness.otel.decode import KIND_CLIENT, KIND_SERVER, Span
from harness.otel.traces import TraceTable, outgoing_host

T1, T2 = "1" * 32, "2" * 32


def span(trace: str = T1, kind: int = 1, start: int = 0, end: int = 0, error: bool = False,
         **attrs: object) -> Span:  # fmt: skip
    return Span(trace, kind, start, end, error, "shop",
                {k.replace("_", "."): v for k, v in attrs.items()})  # type: ignore[misc]


def _rows(path: Path) -> dict[str, dict[str, object]]:
    return {r["trace_id"]: r for r in pq.read_table(path).to_pylist()}


def test_each_span_counts_for_one_thing(tmp_path: Path) -> None:
    table = TraceTable(tmp_path / "traces.parquet")
    spans = [
        span(kind=KIND_SERVER, start=1_000_000, end=6_000_000, http_method="GET"),
        span(db_system="postgresql", db_statement="  SELECT * FROM products"),
        span(db_system="postgresql", db_query_text="(SELECT 1) UNION (SELECT 2)"),
        span(db_system="postgresql", db_operation_name="INSERT"),
        span(db_system="postgresql", db_statement="UPDATE orders SET status = 'paid'"),
        span(db_system="postgresql", db_statement="COMMIT"),  # transaction control: neither
        span(db_system="redis", db_statement="GET product:7"),
        span(db_system_name="valkey"),
        span(db_system="memcached"),
        span(kind=KIND_CLIENT, http_request_method="POST", server_address="127.0.0.1",
             server_port=8001, error=True),
        span(kind=KIND_CLIENT, http_method="POST", http_url="http://127.0.0.1:8001/charge"),
        span(kind=KIND_CLIENT, http_method="GET", url_full="https://api.example.com/x"),
        span(kind=KIND_CLIENT),  # a client span that is no HTTP call: counted as a span only
    ]
    table.add(spans, 100.0)
    assert table.close() == 1
    row = _rows(tmp_path / "traces.parquet")[T1]
    assert (row["spans"], row["db_reads"], row["db_writes"], row["cache_ops"]) == (13, 2, 2, 3)
    assert row["external_calls"] == 3 and row["span_errors"] == 1
    assert row["external"] == "127.0.0.1:8001=2;api.example.com:443=1"
    assert row["server_ms"] == 5.0 and row["service"] == "shop"


def test_the_earliest_server_span_gives_server_ms(tmp_path: Path) -> None:
    table = TraceTable(tmp_path / "traces.parquet")
    table.add([span(kind=KIND_SERVER, start=50, end=2_000_050)], 1.0)  # a downstream's
    table.add([span(kind=KIND_SERVER, start=10, end=9_000_010)], 2.0)  # the entry's
    table.close()
    row = _rows(tmp_path / "traces.parquet")[T1]
    assert row["server_ms"] == 9.0 and (row["first_arrival"], row["last_arrival"]) == (1.0, 2.0)


def test_idle_traces_are_written_out_and_a_straggler_is_merged(tmp_path: Path) -> None:
    path = tmp_path / "traces.parquet"
    table = TraceTable(path, idle_s=5.0)
    table.add([span(T1, db_system="postgresql", db_statement="SELECT 1"),
               span(T1, kind=KIND_SERVER, start=0, end=1_000_000)], 10.0)  # fmt: skip
    table.add([span(T2, db_system="redis")], 14.0)
    assert table.evict(now=16.0) == 1 and table.open_traces == 1  # T1 idle for 6 s: out
    table.add([span(T1, db_system="postgresql", db_statement="INSERT INTO t VALUES (1)"),
               span(T1, kind=KIND_CLIENT, http_method="GET", server_address="pay",
                    server_port=80)], 30.0)  # fmt: skip
    assert table.close() == 2
    rows = _rows(path)
    assert len(pq.read_table(path)) == 2  # one row per trace id
    t1 = rows[T1]
    assert (t1["spans"], t1["db_reads"], t1["db_writes"], t1["external"]) == (4, 1, 1, "pay:80=1")
    assert (t1["first_arrival"], t1["last_arrival"], t1["server_ms"]) == (10.0, 30.0, 1.0)
    assert rows[T2]["cache_ops"] == 1 and rows[T2]["server_ms"] is None


def test_outgoing_host_from_old_and_new_attribute_names() -> None:
    assert outgoing_host({"net.peer.name": "db", "net.peer.port": 5432}) == "db:5432"
    assert outgoing_host({"http.url": "http://pay:8080/c"}) == "pay:8080"
    assert outgoing_host({"server.address": "x", "url.full": "http://x/c"}) == "x:80"
    assert outgoing_host({}) == "unknown"


def test_a_corrupt_traces_file_is_an_artifact_error(tmp_path: Path) -> None:
    path = tmp_path / "traces.parquet"
    assert read_traces(path) is None
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(ArtifactError, match="traces.parquet: truncated or not a Parquet file"):
        read_traces(path)


def test_parts_left_by_a_killed_receiver_are_recovered_before_analysis(tmp_path: Path) -> None:
    from harness.artifacts.recover import recover_parts

    table = TraceTable(tmp_path / "traces.parquet", idle_s=0.0)
    table.add([span(T1, db_system="redis")], 1.0)
    table.evict(now=2.0)
    table.add([span(T1, db_system="redis"), span(T2)], 3.0)
    table.evict(now=4.0)  # two parts, T1 in both; the receiver dies before close()
    assert not (tmp_path / "traces.parquet").exists()
    recover_parts(tmp_path)
    rows = _rows(tmp_path / "traces.parquet")
    assert rows[T1]["cache_ops"] == 2 and rows[T1]["spans"] == 2 and rows[T2]["spans"] == 1
    assert not (tmp_path / "traces.parquet.parts").exists()
