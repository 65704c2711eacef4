"""The ``traces.parquet`` artifact: one row per trace id (a run with OpenTelemetry), written by
the embedded OTLP receiver (``harness.otel``) and read by analysis.

Parts written while spans arrive are compacted by :func:`finish`; a trace whose spans straddle
two parts has a row in each, which it merges (counts summed, arrivals min/max, the earliest
SERVER span). ``otel.json`` beside it holds the receiver's own counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.artifacts.parts import PartWriter
from harness.errors import ArtifactError

__all__ = ["COUNT_COLUMNS", "OTEL_STATS", "TRACES", "TRACE_SCHEMA", "finish", "read_traces"]

TRACES = "traces.parquet"
OTEL_STATS = "otel.json"  # the receiver's counts (spans, rejected, late, first error)
COUNT_COLUMNS = ("spans", "db_reads", "db_writes", "cache_ops", "external_calls", "span_errors")

# One row per trace id; external is "host:port=n;..." like the request records' column.
TRACE_SCHEMA = pa.schema([
    ("trace_id", pa.string()), ("service", pa.string()), ("spans", pa.int64()),
    ("db_reads", pa.int64()), ("db_writes", pa.int64()), ("cache_ops", pa.int64()),
    ("external_calls", pa.int64()), ("external", pa.string()), ("server_ms", pa.float64()),
    ("server_start_ns", pa.int64()), ("span_errors", pa.int64()),
    ("first_arrival", pa.float64()), ("last_arrival", pa.float64()),
])  # fmt: skip


def finish(final: Path) -> int:
    """Compact ``final``'s parts and merge the rows of a trace id seen in several parts."""
    rows = PartWriter(final, TRACE_SCHEMA).close()
    if not rows:
        return 0
    table = pq.read_table(final)
    if pc.count_distinct(table["trace_id"]).as_py() == table.num_rows:
        return rows
    merged = _merge(table)
    tmp = final.with_name(f".{final.name}.merge")
    pq.write_table(merged, tmp, compression="zstd")
    tmp.replace(final)
    return int(merged.num_rows)


def _merge(table: pa.Table) -> pa.Table:
    """One row per trace id: counts summed, arrivals min/max, the earliest SERVER span."""
    frame = table.to_pandas()
    frame = frame.sort_values(["trace_id", "server_start_ns"], na_position="last")
    groups = frame.groupby("trace_id", sort=False)
    out = groups[list(COUNT_COLUMNS)].sum()
    out["first_arrival"] = groups["first_arrival"].min()
    out["last_arrival"] = groups["last_arrival"].max()
    for column in ("service", "server_ms", "server_start_ns"):
        out[column] = groups[column].first()
    out["external"] = groups["external"].agg(_merge_external)
    out = out.reset_index()
    return pa.Table.from_pandas(out[list(TRACE_SCHEMA.names)], schema=TRACE_SCHEMA,
                                preserve_index=False).combine_chunks()  # fmt: skip


def _merge_external(values: Any) -> str | None:
    counts: dict[str, int] = {}
    for value in values:
        if isinstance(value, str):
            for part in value.split(";"):
                host, _, number = part.rpartition("=")
                counts[host] = counts.get(host, 0) + int(number)
    return ";".join(f"{h}={n}" for h, n in sorted(counts.items())) or None


def read_traces(path: Path, columns: list[str] | None = None) -> pa.Table | None:
    """``traces.parquet`` (or None when the run has none); ArtifactError when unreadable."""
    if not path.exists():
        return None
    try:
        parquet = pq.ParquetFile(path)
        names = set(parquet.schema_arrow.names)
        wanted = columns or list(TRACE_SCHEMA.names)
        missing = [c for c in wanted if c not in names]
        if missing:
            raise ArtifactError(f"{path}: column {missing[0]!r} is missing; "
                                "not a harness traces artifact")  # fmt: skip
        return parquet.read(columns=wanted)
    except ArtifactError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise ArtifactError(f"{path}: truncated or not a Parquet file ({exc})") from exc
