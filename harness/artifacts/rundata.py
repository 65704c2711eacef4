"""Loading a run directory's artifacts into typed, analysis-ready frames.

``load_run`` reads only the columns analysis needs, with pyarrow, into pandas: string columns
become categoricals (endpoint, phase, replica, tenant, variant, ...), int64 columns (nullable
counters) become float64 with NaN meaning "not reported" (so sums skip them), ``status`` is
int32 (0 when null) and ``alive`` is bool (False when null). A missing or zero-byte Parquet
file (a crashed run) loads as zero rows and is noted in ``RunData.notes``; a truncated or
foreign one raises :class:`ArtifactError` naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.artifacts.join import TraceLookup, fill_from_traces
from harness.artifacts.schema import (
    FAULTS,
    REQUEST_SCHEMA,
    REQUESTS,
    USAGE,
    USAGE_SCHEMA,
    Manifest,
    PhaseWindow,
    read_manifest,
)
from harness.errors import ArtifactError

# Columns added with OpenTelemetry: a run written before them loads them as null.
OTEL_COLUMNS: tuple[str, ...] = ("trace_id", "cache_ops", "server_ms", "span_errors",
                                 "telemetry_source")  # fmt: skip
REQUEST_COLUMNS: tuple[str, ...] = (
    "start",
    "latency_ms",
    "endpoint",
    "method",
    "status",
    "error",
    "bytes_out",
    "replica",
    "tenant",
    "phase",
    "variant",
    "cpu_ms",
    "db_reads",
    "db_writes",
    "cache_hits",
    "cache_misses",
    "external_calls",
    "external",
    "retries",
    "log_bytes",
    *OTEL_COLUMNS,
)
USAGE_COLUMNS: tuple[str, ...] = (
    "ts",
    "service",
    "replica",
    "role",
    "cpu_s",
    "rss_bytes",
    "cpu_limit",
    "mem_limit_bytes",
    "alive",
    "phase",
)
# Above IN_MEMORY_ROWS request records, ``requests`` holds only SLIM_COLUMNS (what exact
# percentiles and the timeline need) and the cost engine streams the file in BATCH_ROWS slices.
SLIM_COLUMNS: tuple[str, ...] = ("start", "latency_ms", "endpoint", "method", "error", "phase")
IN_MEMORY_ROWS = 2_000_000
BATCH_ROWS = 1_000_000
FALLBACK_PHASE = "run"  # the one priced window of a manifest that recorded no phases


@dataclass(frozen=True)
class RunData:
    """A run's artifacts in memory. ``notes`` says what was missing or empty.

    For a large run (``streamed`` is set) ``requests`` holds SLIM_COLUMNS only; read every
    column through :meth:`priced_batches`, which works for both cases.
    """

    run_dir: Path
    manifest: Manifest
    requests: pd.DataFrame
    usage: pd.DataFrame
    faults: list[dict[str, Any]]
    notes: tuple[str, ...] = ()
    streamed: Path | None = None  # the requests file priced_batches streams from
    request_columns: tuple[str, ...] = REQUEST_COLUMNS
    traces: TraceLookup | None = None  # traces.parquet, joined into streamed batches

    @cached_property
    def priced_windows(self) -> tuple[PhaseWindow, ...]:
        """Priced phase windows with ``end`` resolved: an open phase ends where the next one
        starts, else at the manifest's end, else at the last recorded timestamp."""
        manifest = self.manifest
        run_end = manifest.ended_at or self._last_timestamp() or manifest.started_at
        if not manifest.phases:
            start = manifest.started_at
            return (PhaseWindow(name=FALLBACK_PHASE, start=start, end=max(run_end, start)),)
        windows = []
        starts = [p.start for p in manifest.phases[1:]] + [run_end]
        for phase, next_start in zip(manifest.phases, starts, strict=True):
            if phase.priced:
                end: float = phase.end if phase.end is not None else next_start
                windows.append(phase.model_copy(update={"end": max(end, phase.start)}))
        return tuple(windows)

    @property
    def duration_s(self) -> float:
        """Priced seconds: the sum of the priced windows' lengths."""
        return float(sum((w.end or w.start) - w.start for w in self.priced_windows))

    @cached_property
    def priced_requests(self) -> pd.DataFrame:
        """Requests of priced phases (all, labelled ``run``, when the manifest has no phases)."""
        return self._priced(self.requests)

    def priced_batches(self) -> Iterator[pd.DataFrame]:
        """Priced requests with every loaded column, in slices of at most BATCH_ROWS rows
        (at least one slice, maybe empty)."""
        if self.streamed is None:
            priced = self.priced_requests
            for offset in range(0, max(len(priced), 1), BATCH_ROWS):
                yield priced.iloc[offset : offset + BATCH_ROWS]
            return
        try:
            parquet = pq.ParquetFile(self.streamed)
            columns = list(self.request_columns)
            present = set(parquet.schema_arrow.names)
            read = [c for c in columns if c in present or c not in OTEL_COLUMNS]
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=read):
                frame = _with_optional(_to_pandas(pa.Table.from_batches([batch])), columns)
                yield self._priced(fill_from_traces(frame, self.traces))
        except (pa.ArrowException, OSError) as exc:
            raise ArtifactError(f"{self.streamed}: truncated or unreadable ({exc})") from exc

    def _priced(self, requests: pd.DataFrame) -> pd.DataFrame:
        if not self.manifest.phases:
            frame = requests.copy()
            frame["phase"] = pd.Categorical([FALLBACK_PHASE] * len(frame))
            return frame
        mask = requests["phase"].isin([w.name for w in self.priced_windows])
        return requests if bool(mask.all()) else requests[mask]

    def _last_timestamp(self) -> float | None:
        candidates = []
        if len(self.requests):
            candidates.append(float(self.requests["start"].max()))
        if len(self.usage):
            candidates.append(float(self.usage["ts"].max()))
        return max(candidates) if candidates else None


def _check_schema(
    path: Path, actual: pa.Schema, expected: pa.Schema, columns: Sequence[str]
) -> None:
    for name in columns:
        want = expected.field(name).type
        index = actual.get_field_index(name)
        if index < 0:
            raise ArtifactError(
                f"{path}: column {name!r} is missing; not a harness artifact of this schema"
            )
        got = actual.field(index).type
        if pa.types.is_dictionary(got):
            got = got.value_type
        if got != want and not (pa.types.is_large_string(got) and pa.types.is_string(want)):
            raise ArtifactError(f"{path}: column {name!r} has type {got}, expected {want}")


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    for name, fill in (("status", pa.scalar(0, pa.int32())), ("alive", pa.scalar(False))):
        index = table.schema.get_field_index(name)
        if index >= 0:
            table = table.set_column(index, name, pc.fill_null(table.column(name), fill))
    for index, field in enumerate(table.schema):
        if pa.types.is_int64(field.type):  # nullable counters: NaN = not reported
            table = table.set_column(index, field.name, table.column(index).cast(pa.float64()))
    frame: pd.DataFrame = table.to_pandas(
        strings_to_categorical=True, split_blocks=True, self_destruct=True
    )
    return frame


def read_parquet(
    path: Path, schema: pa.Schema, columns: Sequence[str], keep: Sequence[str] | None = None
) -> tuple[pd.DataFrame, str | None]:
    """Check ``columns`` of an artifact and read them (or only ``keep``); return (frame, note)
    where note explains zero rows."""
    read = list(keep if keep is not None else columns)
    if not path.is_file() or path.stat().st_size == 0:
        state = "missing" if not path.exists() else "empty (0 bytes)"
        return _to_pandas(schema.empty_table().select(read)), f"{path.name} {state}"
    try:
        parquet = pq.ParquetFile(path)
        _check_schema(path, parquet.schema_arrow, schema, columns)
        table = parquet.read(columns=read)
    except ArtifactError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise ArtifactError(f"{path}: truncated or not a Parquet file ({exc})") from exc
    note = f"{path.name} has no rows" if table.num_rows == 0 else None
    return _to_pandas(table), note


def _row_count(path: Path) -> int:
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (pa.ArrowException, OSError):
        return 0  # missing, empty or broken: read_parquet says which


def read_faults(path: Path) -> list[dict[str, Any]]:
    """Read ``faults.jsonl``; a final line cut short by a crash is skipped."""
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable ({exc})") from exc
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                break
            raise ArtifactError(f"{path}: line {number} is not JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ArtifactError(f"{path}: line {number} is not a JSON object")
        records.append(record)
    return records


def load_run(
    run_dir: Path,
    request_columns: Sequence[str] = REQUEST_COLUMNS,
    usage_columns: Sequence[str] = USAGE_COLUMNS,
    in_memory_rows: int = IN_MEMORY_ROWS,
) -> RunData:
    """Load a run directory (manifest, requests, usage, faults) or raise ArtifactError.

    More than ``in_memory_rows`` request records are not loaded whole (see RunData)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    path = run_dir / REQUESTS
    streamed = path if _row_count(path) > in_memory_rows else None
    present = _column_names(path)
    read = [c for c in request_columns if c not in OTEL_COLUMNS or c in present]
    keep = [c for c in read if c in SLIM_COLUMNS] if streamed else None
    requests, requests_note = read_parquet(path, REQUEST_SCHEMA, read, keep)
    traces = TraceLookup.of_run(run_dir, manifest.services)
    if not streamed:
        requests = fill_from_traces(_with_optional(requests, request_columns), traces)
    usage, usage_note = read_parquet(run_dir / USAGE, USAGE_SCHEMA, usage_columns)
    notes = tuple(n for n in (requests_note, usage_note) if n)
    faults = read_faults(run_dir / FAULTS)
    columns = tuple(request_columns)
    return RunData(run_dir, manifest, requests, usage, faults, notes, streamed, columns, traces)


def _column_names(path: Path) -> set[str]:
    try:
        return set(pq.ParquetFile(path).schema_arrow.names)
    except (pa.ArrowException, OSError):
        return set(REQUEST_SCHEMA.names)  # missing or broken: read_parquet says which


def _with_optional(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with the OTel columns asked for but absent from an older file, as null."""
    for name in OTEL_COLUMNS:
        if name in columns and name not in frame.columns:
            numeric = pa.types.is_integer(REQUEST_SCHEMA.field(name).type) or \
                pa.types.is_floating(REQUEST_SCHEMA.field(name).type)
            frame[name] = np.nan if numeric else pd.Categorical([None] * len(frame))
    return frame
