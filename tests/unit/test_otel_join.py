"""Requests ⋈ traces: telemetry of requests without Server-Timing comes from their trace
(exact counts, vendors named by the stack's services), the per-request source is kept and
aggregated, and lost / late / foreign / rejected are counted from the files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from artifact_factory import SIMPLE_PRICES, request, samples, service, write_book, write_run

from harness.artifacts import REQUEST_SCHEMA, REQUESTS
from harness.artifacts.join import otel_accounting, vendor_names
from harness.artifacts.rundata import OTEL_COLUMNS, load_run
from harness.artifacts.traces import OTEL_STATS, TRACES
from harness.cost import build_ledger, load_price_book
from harness.cost.quantities import QuantityContext, aggregate_requests
from harness.otel.decode import KIND_CLIENT, KIND_SERVER, Span
from harness.otel.traces import TraceTable
from harness.report.summary import build_summary

T1, T2, T3, T9 = "1" * 32, "2" * 32, "3" * 32, "9" * 32
TEN = [float(t) for t in range(11)]
SERVICES = [service("api", entry=True, billing="usage", port=8000),
            service("payments", "external", port=8001),
            service("cache", "cache", billing="usage", port=6379)]  # fmt: skip


def _span(trace: str, kind: int = 1, **attrs: object) -> Span:
    return Span(trace, kind, 0, 2_000_000, False, "api", dict(attrs))  # type: ignore[arg-type]


def _run(tmp_path: Path, pricing: dict[str, object] | None = None) -> Path:
    requests = [
        request(1.0, "/st", trace_id=T1, db_reads=5, cache_hits=1, cache_misses=1,
                telemetry_source="server-timing"),
        request(2.0, "/otel", trace_id=T2),
        request(3.0, "/otel", trace_id=T3),  # its trace never arrives: lost
        request(3.5, "/otel", trace_id="4" * 32, status=0, error="refused"),  # unanswered
        request(4.0, "/plain"),  # no trace id, no header
    ]  # fmt: skip
    run_dir = write_run(tmp_path / "run", requests,
                        samples("api", TEN, [0.1 * t for t in TEN], rss=0)
                        + samples("cache", TEN, [0.2 * t for t in TEN], rss=0, role="cache"),
                        SERVICES, pricing=pricing)  # fmt: skip
    table = TraceTable(run_dir / TRACES)
    table.add([_span(T1, KIND_SERVER), _span(T1, **{"db.system": "postgresql",
                                                     "db.statement": "SELECT 1"})], 5.0)
    table.add([
        _span(T2, KIND_SERVER),
        _span(T2, **{"db.system": "postgresql", "db.statement": "SELECT 1"}),
        _span(T2, **{"db.system": "postgresql", "db.statement": "INSERT INTO o VALUES (1)"}),
        _span(T2, **{"db.system": "postgresql", "db.operation": "UPDATE"}),
        *[_span(T2, **{"db.system": "redis"}) for _ in range(3)],
        *[_span(T2, KIND_CLIENT, **{"http.method": "POST", "server.address": "127.0.0.1",
                                    "server.port": 8001}) for _ in range(2)],
        _span(T2, KIND_CLIENT, **{"http.method": "GET", "url.full": "http://geo.example:81/"}),
    ], 5.0)  # fmt: skip
    table.add([_span(T9, KIND_SERVER) for _ in range(4)], 6.0)  # a health check's trace
    table.close()
    (run_dir / OTEL_STATS).write_text(json.dumps({"spans": 18, "late_spans": 2,
                                                  "rejected_payloads": 1, "rejected_spans": 0,
                                                  "first_error": "400 not OTLP/JSON"}))
    return run_dir


def test_requests_without_telemetry_take_their_traces_counts(tmp_path: Path) -> None:
    frame = load_run(_run(tmp_path)).requests.set_index("start")
    assert list(frame["telemetry_source"].astype(str)) == [
        "server-timing", "otel-spans", "none", "none", "none"]
    assert "trace_id" not in frame.columns  # not needed past the join
    st, otel = frame.loc[1.0], frame.loc[2.0]
    assert (st["db_reads"], st["cache_hits"]) == (5.0, 1.0)  # the header wins over the trace
    assert pd_isna(st["server_ms"])
    assert (otel["db_reads"], otel["db_writes"], otel["cache_ops"]) == (1.0, 2.0, 3.0)
    assert (otel["external_calls"], otel["server_ms"], otel["span_errors"]) == (3.0, 2.0, 0.0)
    assert otel["external"] == "payments=2;geo.example:81=1"  # a stack service by its name
    assert pd_isna(frame.loc[3.0, "db_reads"]) and pd_isna(frame.loc[4.0, "db_reads"])


def pd_isna(value: object) -> bool:
    return value is None or value != value


def test_quantities_use_span_cache_ops_and_count_each_source(tmp_path: Path) -> None:
    run = load_run(_run(tmp_path))
    ctx = QuantityContext(t0=0.0, granularity_ms=1.0, replica_service={}, entry="api")
    sums = aggregate_requests(run.priced_batches(), ctx).sum(numeric_only=True)
    assert sums["cache_ops"] == 2 + 3  # hits + misses of the header, operations of the spans
    assert (sums["server_timing_n"], sums["otel_n"], sums["no_telemetry_n"]) == (1, 1, 3)
    assert sums["ext:payments"] == 2 and sums["server_ms_n"] == 1


def test_the_ledger_prices_span_operations_like_header_ones(tmp_path: Path) -> None:
    run = load_run(_run(tmp_path))
    book = load_price_book(str(write_book(tmp_path / "books", prices=SIMPLE_PRICES)),
                           {"external:payments": 0.25, "external:geo.example:81": 0.5,
                            "db_read": 0.0, "db_write": 0.0})
    ledger = build_ledger(run, book)
    assert ledger.totals["external"] == pytest.approx(2 * 0.25 + 0.5)
    cache = ledger.rows[ledger.rows["ServiceName"] == "cache"].groupby("x_Endpoint")
    shares = cache["BilledCost"].sum()
    assert shares["/otel"] == pytest.approx(shares["/st"] * 3 / 2)  # 3 ops : 2 ops
    summary = build_summary(run, ledger)
    assert summary["telemetry"]["sources"] == {"server-timing": 1, "otel-spans": 1, "none": 3}
    assert any("1 of 4 traced requests have no trace" in n for n in summary["notes"])


def test_streamed_batches_are_joined_too(tmp_path: Path) -> None:
    run = load_run(_run(tmp_path), in_memory_rows=1)
    assert run.streamed is not None
    (batch,) = list(run.priced_batches())
    assert list(batch["telemetry_source"].astype(str)) == [
        "server-timing", "otel-spans", "none", "none", "none"]
    assert batch.set_index("start").loc[2.0, "cache_ops"] == 3.0


def test_lost_late_foreign_and_rejected_are_counted(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    counts = otel_accounting(run_dir, run_dir / REQUESTS)
    assert counts is not None
    assert {k: counts[k] for k in ("requests_traced", "traces", "lost_requests", "late_spans",
                                   "foreign_traces", "foreign_spans", "rejected_payloads",
                                   "unanswered_requests")} == {
        "requests_traced": 4, "traces": 3, "lost_requests": 1, "late_spans": 2,
        "foreign_traces": 1, "foreign_spans": 4, "rejected_payloads": 1,
        "unanswered_requests": 1}  # fmt: skip
    assert counts["first_error"] == "400 not OTLP/JSON"
    assert otel_accounting(write_run(tmp_path / "plain", [request(1.0)]),
                           tmp_path / "plain" / REQUESTS) is None  # fmt: skip


def test_a_run_written_before_the_otel_columns_still_loads(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "old", None, [], [service("api", entry=True)])
    schema = pa.schema([f for f in REQUEST_SCHEMA if f.name not in OTEL_COLUMNS])
    rows = [request(1.0, db_reads=2), request(2.0)]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), run_dir / REQUESTS)
    frame = load_run(run_dir).requests
    assert list(frame["telemetry_source"].astype(str)) == ["server-timing", "none"]
    assert frame["cache_ops"].isna().all()


def test_vendor_names_map_loopback_and_service_hosts() -> None:
    names = vendor_names(SERVICES)
    assert names["127.0.0.1:8001"] == names["localhost:8001"] == names["payments:8001"]
    assert "127.0.0.1:9999" not in names


def test_the_report_shows_the_otel_accounting_in_the_on_call_and_debug_views(
    tmp_path: Path,
) -> None:
    from harness.report.analysis import analyse

    overrides = {"external:payments": 0.25, "external:geo.example:81": 0.5, "db_read": 0,
                 "db_write": 0}  # fmt: skip
    run_dir = _run(tmp_path, {"overrides": overrides})
    book = write_book(tmp_path / "books", prices=SIMPLE_PRICES)
    html = analyse(run_dir, str(book)).report.read_text()
    assert "OpenTelemetry: 1 lost trace</strong> of 4 traced requests (1 unanswered)" in html
    assert "first: 400 not OTLP/JSON" in html
    assert "answered traced requests whose trace never arrived" in html
