"""Records every request exactly, from Locust's ``request`` event, into ``requests.parquet``.

The event hook only appends a tuple (it runs once per request on the load generator's hot
path); parsing ``Server-Timing`` and building Arrow columns happen once per flush, in batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.artifacts import REQUEST_SCHEMA
from harness.parts import PartWriter
from harness.telemetry import parse_server_timing


class PhaseClock:
    """The phase the run is in now; every record and sample is stamped with it."""

    def __init__(self) -> None:
        self.current = "startup"


_Row = tuple[float, float, str, str, int, str | None, int, int, str | None, str | None,
             str | None, str, float | None]


Sink = Callable[[list[_Row]], None]


class Recorder:
    """Buffers request events and flushes them as Parquet parts (or hands them to ``sink``:
    a remote load-generator worker ships its batches to the master)."""

    def __init__(self, path: Path, clock: PhaseClock, variant: str, prefix: str = "",
                 sink: Sink | None = None) -> None:
        self.writer = PartWriter(path, REQUEST_SCHEMA, prefix)
        self.clock = clock
        self.variant = variant
        self.sink = sink
        self._rows: list[_Row] = []
        self.total = 0
        self.errors = 0
        self.recent: deque[tuple[float, float]] = deque(maxlen=20_000)  # (end, latency_ms)

    def on_request(self, request_type: str, name: str, response_time: float,
                   response_length: int, response: Any, context: dict[str, Any],
                   exception: BaseException | None, start_time: float, **_: Any) -> None:
        """Locust ``events.request`` listener: O(1), no parsing."""
        headers = getattr(response, "headers", None)
        timing = served_by = length = None
        if headers is not None:
            timing = headers.get("server-timing")
            served_by = headers.get("x-served-by")
            length = headers.get("content-length")
        bytes_out = _to_int(length, response_length)
        error = None if exception is None else _error_text(exception)
        self._rows.append((
            start_time, response_time, name, request_type,
            getattr(response, "status_code", 0) or 0, error,
            context.get("bytes_in", 0), bytes_out, _join(timing), _join(served_by),
            context.get("tenant"), self.clock.current, context.get("late_ms"),
        ))

    def flush(self) -> None:
        """Turn buffered events into one Parquet part and update the live counters."""
        rows, self._rows = self._rows, []
        if not rows:
            return
        if self.sink is not None:
            self.sink(rows)
        else:
            self.writer.write(_columns(rows, self.variant))
        self.total += len(rows)
        for row in rows:
            if row[5] is not None:
                self.errors += 1
            self.recent.append((row[0] + row[1] / 1000.0, row[1]))

    def add_rows(self, rows: list[list[Any]]) -> None:
        """Rows shipped by a remote worker (msgpack turned the tuples into lists)."""
        self._rows.extend(tuple(r) for r in rows)

    def close(self) -> int:
        self.flush()
        return self.writer.close()


def _columns(rows: list[_Row], variant: str) -> dict[str, list[Any]]:
    """Rows to columns: transposed in one go (``zip``), telemetry parsed once per row."""
    (start, ms, name, method, status, error, b_in, b_out, timing, served, tenant, phase,
     late) = (list(column) for column in zip(*rows, strict=True))
    tel = [parse_server_timing(header) for header in timing]
    return {
        "start": start,
        "end": [s + m / 1000.0 for s, m in zip(start, ms, strict=True)],
        "latency_ms": ms,
        "endpoint": name,
        "method": method,
        "status": status,
        "error": error,
        "bytes_in": b_in,
        "bytes_out": b_out,
        "replica": served,
        "tenant": tenant,
        "phase": phase,
        "variant": [variant] * len(rows),
        "cpu_ms": [t.cpu_ms for t in tel],
        "db_reads": [t.db_reads for t in tel],
        "db_writes": [t.db_writes for t in tel],
        "cache_hits": [t.cache_hits for t in tel],
        "cache_misses": [t.cache_misses for t in tel],
        "external_calls": [t.external_calls for t in tel],
        "external": [";".join(f"{k}={v}" for k, v in t.external.items()) or None for t in tel],
        "retries": [t.retries for t in tel],
        "log_bytes": [t.log_bytes for t in tel],
        "telemetry_malformed": [t.malformed for t in tel],
        "late_ms": late,
    }


def _join(value: str | list[str] | None) -> str | None:
    if isinstance(value, list):
        return ", ".join(value)
    return value


def _to_int(value: str | list[str] | None, default: int) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return int(default or 0)


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
