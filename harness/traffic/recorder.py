"""Records every request exactly, from Locust's ``request`` event, into ``requests.parquet``.

The event hook only appends a tuple (it runs once per request on the load generator's hot
path); parsing ``Server-Timing`` and building Arrow columns happen once per flush, in batch.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from geventhttpclient.header import Headers

from harness.artifacts import REQUEST_SCHEMA
from harness.artifacts.parts import PartWriter
from harness.artifacts.telemetry import parse_server_timing
from harness.traffic.design import reports_cpu

RECENT_FLUSHES = 16  # flushes kept for the live p95 (one a second during a run)


class PhaseClock:
    """The phase the run is in now; every record and sample is stamped with it."""

    def __init__(self) -> None:
        self.current = "startup"


_Row = tuple[float, float, str, str, int, str | None, int, int, str | None, str | None,
             str | None, str, float | None, str | None]


Sink = Callable[[list[_Row]], None]


class Recorder:
    """Buffers request events and flushes them as Parquet parts (or hands them to ``sink``:
    a remote load-generator worker ships its batches to the master)."""

    def __init__(self, path: Path, clock: PhaseClock, variant: str, prefix: str = "",
                 sink: Sink | None = None) -> None:
        # A remote worker ships its batches (``sink``): no Parquet parts, and no directory for
        # them left in whatever directory it was started from.
        self.writer = PartWriter(path, REQUEST_SCHEMA, prefix) if sink is None else None
        self.clock = clock
        self.variant = variant
        self.sink = sink
        self._rows: list[_Row] = []
        self.total = 0
        self.errors = 0
        self.cpu_reported = 0  # records whose Server-Timing carried cpu (mix: auto's test)
        # (flush time, its latencies in ms) for the live p95: a list per flush, not a tuple per
        # request (1.5 µs -> 0.6 µs per request at 3,000 req/s with the progress line's p95)
        self.recent: deque[tuple[float, list[float]]] = deque(maxlen=RECENT_FLUSHES)

    def on_request(self, request_type: str, name: str, response_time: float,
                   response_length: int, response: Any, context: dict[str, Any],
                   exception: BaseException | None, start_time: float, **_: Any) -> None:
        """Locust ``events.request`` listener: O(1), no parsing."""
        headers = getattr(response, "headers", None)
        timing = served_by = length = None
        if type(headers) is Headers:  # FastHttpUser's: read without case folding or KeyError
            timing = _fast_header(headers, "server-timing")
            served_by = _fast_header(headers, "x-served-by")
            length = _fast_header(headers, "content-length")
        elif headers is not None:  # HttpUser (requests) in a user's locustfile
            timing = _join(headers.get("server-timing"))
            served_by = _join(headers.get("x-served-by"))
            length = _join(headers.get("content-length"))
        self._rows.append((
            start_time, response_time, name, request_type,
            getattr(response, "status_code", 0) or 0,
            None if exception is None else _error_text(exception),
            context.get("bytes_in", 0),
            int(length) if length is not None and length.isdigit() else int(response_length or 0),
            timing, served_by, context.get("tenant"), self.clock.current, context.get("late_ms"),
            context.get("trace_id"),
        ))

    def flush(self) -> None:
        """Turn buffered events into one Parquet part and update the live counters."""
        rows, self._rows = self._rows, []
        if not rows:
            return
        if self.sink is not None:
            self.sink(rows)
        elif self.writer is not None:
            self.writer.write(_columns(rows, self.variant))
        self.total += len(rows)
        self.errors += sum(row[5] is not None for row in rows)
        if not self.cpu_reported:  # once one did, auto has decided: no scan per flush
            self.cpu_reported += sum(reports_cpu(row[8]) for row in rows)
        self.recent.append((time.time(), [row[1] for row in rows]))

    def add_rows(self, rows: list[list[Any]]) -> None:
        """Rows shipped by a remote worker (msgpack turned the tuples into lists)."""
        self._rows.extend(tuple(r) for r in rows)

    def close(self) -> int:
        """Flush, then compact the parts: the rows written (shipped, for a remote worker)."""
        self.flush()
        return self.total if self.writer is None else self.writer.close()


def _columns(rows: list[_Row], variant: str) -> dict[str, list[Any]]:
    """Rows to columns: transposed in one go (``zip``), each distinct header parsed once."""
    (start, ms, name, method, status, error, b_in, b_out, timing, served, tenant, phase,
     late, trace) = (list(column) for column in zip(*rows, strict=True))
    parsed: dict[str | None, _TelemetryRow] = {None: _NO_TELEMETRY}
    for header in timing:
        if header not in parsed:
            parsed[header] = _telemetry_row(header)
    (cpu, reads, writes, hits, misses, calls, external, retries, logs, malformed,
     source) = (list(column) for column in zip(*map(parsed.__getitem__, timing), strict=True))
    nothing = [None] * len(rows)
    return {
        "start": start, "end": [s + m / 1000.0 for s, m in zip(start, ms, strict=True)],
        "latency_ms": ms, "endpoint": name, "method": method, "status": status, "error": error,
        "bytes_in": b_in, "bytes_out": b_out, "replica": served, "tenant": tenant,
        "phase": phase, "variant": [variant] * len(rows), "cpu_ms": cpu, "db_reads": reads,
        "db_writes": writes, "cache_hits": hits, "cache_misses": misses,
        "external_calls": calls, "external": external, "retries": retries, "log_bytes": logs,
        "telemetry_malformed": malformed, "late_ms": late, "trace_id": trace,
        "cache_ops": nothing, "server_ms": nothing, "span_errors": nothing,
        "telemetry_source": source,
    }  # fmt: skip


# cpu_ms, db_reads, db_writes, cache_hits, cache_misses, external_calls, external, retries,
# log_bytes, telemetry_malformed, telemetry_source: the telemetry columns of one record.
_TelemetryRow = tuple[float | None, int | None, int | None, int | None, int | None, int | None,
                      str | None, int | None, int | None, bool, str | None]
_NO_TELEMETRY: _TelemetryRow = (None, None, None, None, None, None, None, None, None, False,
                                None)
SERVER_TIMING = "server-timing"


def _telemetry_row(header: str) -> _TelemetryRow:
    t = parse_server_timing(header)
    external = ";".join(f"{k}={v}" for k, v in t.external.items()) or None
    values = (t.cpu_ms, t.db_reads, t.db_writes, t.cache_hits, t.cache_misses,
              t.external_calls, external, t.retries, t.log_bytes)
    # a header without any of the harness's fields (a CDN's, say) is no telemetry source
    source = SERVER_TIMING if any(v is not None for v in values) else None
    return (*values, t.malformed, source)


def _join(value: str | list[str] | None) -> str | None:
    if isinstance(value, list):
        return ", ".join(value)
    return value


_dict_get = dict.get


def _fast_header(headers: Headers, lower_name: str) -> str | None:
    """One header of a geventhttpclient ``Headers`` (a dict keyed by lower-cased names whose
    values are ``(name, value)`` or, for a repeated header, a list of them); repeats joined."""
    entry = _dict_get(headers, lower_name)
    if entry is None:
        return None
    if isinstance(entry, tuple):
        return str(entry[1])
    return ", ".join(str(value) for _, value in entry)


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
