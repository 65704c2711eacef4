"""Request records ⋈ their traces: telemetry from spans, and what did not match.

:func:`fill_from_traces` fills the telemetry columns of requests that have none (no
``Server-Timing``) from their trace's row in ``traces.parquet``, by trace id, and sets
``telemetry_source`` (``server-timing`` | ``otel-spans`` | ``none``) on every request.
:func:`otel_accounting` counts what did not match, from the files alone:

* ``lost_requests`` — requests answered by the target (an HTTP status) that sent a trace id
  whose trace never arrived; ``unanswered_requests`` — traced requests without any response
  (connection refused, timeout) and without a trace: no server may have seen them;
* ``late_spans`` — spans that arrived after the stack was down (still counted in their trace);
* ``foreign_traces`` / ``foreign_spans`` — traces whose id the harness never sent (health
  checks, start-up work, a client other than the harness);
* ``rejected_payloads`` / ``rejected_spans`` and the receiver's ``first_error``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.artifacts.schema import read_json_object
from harness.artifacts.traces import OTEL_STATS, TRACES, read_traces
from harness.errors import ArtifactError

__all__ = ["FILLED", "SOURCES", "TraceLookup", "fill_from_traces", "otel_accounting",
           "vendor_names"]  # fmt: skip

SERVER_TIMING, OTEL_SPANS, NO_TELEMETRY = "server-timing", "otel-spans", "none"
SOURCES = (SERVER_TIMING, OTEL_SPANS, NO_TELEMETRY)
# request column <- traces.parquet column
FILLED = {"db_reads": "db_reads", "db_writes": "db_writes", "cache_ops": "cache_ops",
          "external_calls": "external_calls", "server_ms": "server_ms",
          "span_errors": "span_errors"}  # fmt: skip
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def vendor_names(services: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """``host:port`` → service name for the stack's services (manifest ``services``)."""
    names: dict[str, str] = {}
    for service in services:
        name, port = service.get("name"), service.get("port")
        if not name or not port:
            continue
        for host in (*LOOPBACK, str(name)):
            names[f"{host}:{port}"] = str(name)
    return names


class TraceLookup:
    """The traces of a run, indexed by trace id, external hosts named by service."""

    def __init__(self, table: pa.Table, names: Mapping[str, str]) -> None:
        columns = ["trace_id", *FILLED.values(), "external"]
        frame = table.select(columns).to_pandas()
        self.frame = frame.set_index("trace_id")
        self.frame["external"] = self.frame["external"].map(
            lambda v: _rename(v, names) if isinstance(v, str) else None)

    @classmethod
    def of_run(cls, run_dir: Path, services: Iterable[Mapping[str, Any]]) -> TraceLookup | None:
        table = read_traces(run_dir / TRACES)
        return None if table is None else cls(table, vendor_names(services))


def _rename(external: str, names: Mapping[str, str]) -> str:
    counts: dict[str, int] = {}
    for part in external.split(";"):
        host, _, number = part.rpartition("=")
        if host and number.isdigit():
            vendor = names.get(host, host)
            counts[vendor] = counts.get(vendor, 0) + int(number)
    return ";".join(f"{v}={n}" for v, n in counts.items())


def fill_from_traces(frame: pd.DataFrame, lookup: TraceLookup | None) -> pd.DataFrame:
    """``frame`` (loaded request records) with telemetry from traces and ``telemetry_source``;
    the ``trace_id`` column is dropped (it is not needed past the join)."""
    source = _source(frame)
    if lookup is not None and "trace_id" in frame.columns and len(frame):
        rows = _trace_rows(frame["trace_id"], lookup)
        found = (rows >= 0) & (source == NO_TELEMETRY)
        if found.any():
            frame = frame.copy()
            picked = lookup.frame.iloc[rows[found]]
            for column, trace_column in FILLED.items():
                values = _float_column(frame, column)
                values[found] = picked[trace_column].to_numpy(float)
                frame[column] = values
            external = _object_column(frame, "external")
            external[found] = picked["external"].to_numpy(object)
            frame["external"] = pd.Categorical(external)
            source = source.copy()
            source[found] = OTEL_SPANS
    frame = frame.drop(columns=[c for c in ("trace_id",) if c in frame.columns])
    frame["telemetry_source"] = pd.Categorical(source, categories=list(SOURCES))
    return frame


def _source(frame: pd.DataFrame) -> np.ndarray:
    """The recorded source, else server-timing for a record with header fields (a run written
    before the column), else none."""
    reported = np.zeros(len(frame), dtype=bool)
    for name in ("cpu_ms", "db_reads", "db_writes", "cache_hits", "cache_misses"):
        if name in frame.columns:
            reported |= frame[name].notna().to_numpy()
    inferred = np.where(reported, SERVER_TIMING, NO_TELEMETRY).astype(object)
    if "telemetry_source" not in frame.columns:
        return inferred
    column = frame["telemetry_source"].astype(object)
    return np.where(column.isna(), inferred, column).astype(object)


def _trace_rows(trace_id: pd.Series, lookup: TraceLookup) -> np.ndarray:
    """Row of each request's trace in ``lookup`` (-1: none), through the categories."""
    if not isinstance(trace_id.dtype, pd.CategoricalDtype):
        trace_id = trace_id.astype("category")
    positions = lookup.frame.index.get_indexer(trace_id.cat.categories.astype(object))
    codes = trace_id.cat.codes.to_numpy()
    return np.where(codes >= 0, np.append(positions, -1)[codes], -1)


def _float_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return frame[name].to_numpy(float, copy=True)


def _object_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), None, dtype=object)
    column = frame[name].astype(object)
    return np.array(column.where(column.notna(), None), dtype=object)


def otel_accounting(run_dir: Path, requests_path: Path) -> dict[str, Any] | None:
    """Lost / late / foreign / rejected counts of a run with OTel (None without it)."""
    stats_path = run_dir / OTEL_STATS
    traces = read_traces(run_dir / TRACES, ["trace_id", "spans"])
    if traces is None and not stats_path.exists():
        return None
    stats = _read_stats(stats_path)
    sent, answered = _sent_ids(requests_path)
    if traces is None:
        traces = pa.table({"trace_id": pa.array([], pa.string()),
                           "spans": pa.array([], pa.int64())})  # fmt: skip
    known = pc.is_in(traces["trace_id"], value_set=sent)
    missing = pc.invert(pc.is_in(sent, value_set=traces["trace_id"]))
    foreign = pc.invert(known)
    return {
        "requests_traced": len(sent),
        "traces": traces.num_rows,
        "spans": int(stats.get("spans") or pc.sum(traces["spans"]).as_py() or 0),
        "lost_requests": _count(pc.and_(missing, answered)),
        "unanswered_requests": _count(pc.and_(missing, pc.invert(answered))),
        "late_spans": int(stats.get("late_spans") or 0),
        "foreign_traces": _count(foreign),
        "foreign_spans": int(pc.sum(pc.filter(traces["spans"], foreign)).as_py() or 0),
        "rejected_payloads": int(stats.get("rejected_payloads") or 0),
        "rejected_spans": int(stats.get("rejected_spans") or 0),
        "first_error": stats.get("first_error"),
        "drained": stats.get("drained"),
    }


def _count(mask: pa.Array) -> int:
    return int(pc.sum(mask).as_py() or 0)


def _sent_ids(requests_path: Path) -> tuple[pa.Array, pa.Array]:
    """The trace ids the requests sent, and whether each request got an HTTP response."""
    empty = pa.array([], pa.string()), pa.array([], pa.bool_())
    if not requests_path.is_file() or requests_path.stat().st_size == 0:
        return empty
    try:
        parquet = pq.ParquetFile(requests_path)
        if "trace_id" not in parquet.schema_arrow.names:
            return empty
        table = parquet.read(columns=["trace_id", "status"]).combine_chunks()
    except (pa.ArrowException, OSError) as exc:
        raise ArtifactError(f"{requests_path}: truncated or unreadable ({exc})") from exc
    table = table.filter(pc.is_valid(table["trace_id"]))
    answered = pc.fill_null(pc.greater(table["status"], 0), False)
    return table["trace_id"].combine_chunks().cast(pa.string()), answered.combine_chunks()


def _read_stats(path: Path) -> dict[str, Any]:
    return read_json_object(path) if path.exists() else {}
