"""Per-trace aggregation of spans as they arrive, into the ``traces.parquet`` artifact
(``harness.artifacts.traces``).

What a span counts for (first rule that matches):

* ``db.system`` (or ``db.system.name``) in :data:`CACHE_SYSTEMS` — one cache operation;
* another ``db.system`` — one database statement: a read when its operation
  (``db.operation.name`` / ``db.operation``, else the first keyword of ``db.query.text`` /
  ``db.statement``) is in :data:`READ_OPERATIONS`, nothing for transaction control
  (:data:`IGNORED_OPERATIONS`), else a write;
* a CLIENT span with an HTTP method attribute — one outgoing call to its host
  (``server.address``/``net.peer.name`` and port, else the host of ``url.full``/``http.url``).

Every span adds to ``spans``; status ERROR adds to ``span_errors``; the earliest-starting
SERVER span gives ``server_ms``. Memory is bounded by the traces active in the last
``idle_s`` seconds, not by the spans: :meth:`TraceTable.evict` writes idle traces out as
Parquet parts. A trace whose spans straddle an eviction has several part rows; :func:`finish`
merges them, so ``traces.parquet`` holds one row per trace id.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.artifacts.parts import PartWriter
from harness.artifacts.traces import TRACE_SCHEMA, finish
from harness.otel.decode import KIND_CLIENT, KIND_SERVER, Span

__all__ = ["CACHE_SYSTEMS", "TraceTable", "outgoing_host"]

CACHE_SYSTEMS = frozenset({"redis", "valkey", "memcached"})
READ_OPERATIONS = frozenset({
    "SELECT", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "WITH", "VALUES", "TABLE", "GET", "FIND",
    "COUNT", "AGGREGATE", "SCAN", "QUERY",
})  # fmt: skip
IGNORED_OPERATIONS = frozenset({
    "BEGIN", "COMMIT", "ROLLBACK", "START", "SAVEPOINT", "RELEASE", "SET", "RESET", "DISCARD",
})  # fmt: skip



class _Trace:
    __slots__ = ("service", "spans", "reads", "writes", "cache", "ext", "server_ms",
                 "server_start", "errors", "first", "last")  # fmt: skip

    def __init__(self, arrival: float) -> None:
        self.service: str | None = None
        self.spans = self.reads = self.writes = self.cache = self.errors = 0
        self.ext: dict[str, int] | None = None
        self.server_ms: float | None = None
        self.server_start = 0
        self.first = self.last = arrival

    def add(self, span: Span) -> None:
        self.spans += 1
        self.errors += span.error
        attrs = span.attrs
        system = attrs.get("db.system") or attrs.get("db.system.name")
        if system:
            if str(system).lower() in CACHE_SYSTEMS:
                self.cache += 1
            else:
                self._statement(attrs)
        elif span.kind == KIND_CLIENT and ("http.request.method" in attrs
                                           or "http.method" in attrs):  # fmt: skip
            host = outgoing_host(attrs)
            ext = self.ext if self.ext is not None else {}
            ext[host] = ext.get(host, 0) + 1
            self.ext = ext
        if span.kind == KIND_SERVER and (self.server_ms is None
                                         or span.start_ns < self.server_start):  # fmt: skip
            self.server_start = span.start_ns
            self.server_ms = max(span.end_ns - span.start_ns, 0) / 1e6
            self.service = span.service
        elif self.service is None:
            self.service = span.service

    def _statement(self, attrs: dict[str, Any]) -> None:
        operation = attrs.get("db.operation.name") or attrs.get("db.operation")
        if not operation:
            text = str(attrs.get("db.query.text") or attrs.get("db.statement") or "")
            operation = text.lstrip(" (\n\t").split(None, 1)[0] if text.strip(" (\n\t") else ""
        word = str(operation).upper()
        if word in IGNORED_OPERATIONS:
            return
        if word in READ_OPERATIONS:
            self.reads += 1
        else:
            self.writes += 1

    def row(self, trace_id: str) -> tuple[Any, ...]:
        ext = self.ext or {}
        external = ";".join(f"{h}={n}" for h, n in sorted(ext.items())) or None
        return (trace_id, self.service, self.spans, self.reads, self.writes, self.cache,
                sum(ext.values()), external, self.server_ms,
                self.server_start if self.server_ms is not None else None, self.errors,
                self.first, self.last)  # fmt: skip


def outgoing_host(attrs: dict[str, Any]) -> str:
    """``host:port`` of an outgoing HTTP call from its span attributes."""
    host = attrs.get("server.address") or attrs.get("net.peer.name")
    port = attrs.get("server.port") or attrs.get("net.peer.port")
    url = attrs.get("url.full") or attrs.get("http.url")
    if (not host or not port) and url:
        try:
            parts = urlsplit(str(url))
            host = host or parts.hostname
            port = port or parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            pass
    if not host:
        host = str(attrs.get("http.host") or "unknown")
    return f"{host}:{port}" if port else str(host)


class TraceTable:
    """Traces being aggregated (thread-safe); idle ones are written out as parts."""

    def __init__(self, final: Path, idle_s: float = 10.0) -> None:
        self.final = final
        self.idle_s = idle_s
        self._writer = PartWriter(final, TRACE_SCHEMA)
        self._open: dict[str, _Trace] = {}
        self._lock = threading.Lock()
        self.spans = 0

    def add(self, spans: list[Span], arrival: float) -> None:
        with self._lock:
            open_traces = self._open
            for span in spans:
                trace = open_traces.get(span.trace_id)
                if trace is None:
                    trace = open_traces[span.trace_id] = _Trace(arrival)
                trace.last = arrival
                trace.add(span)
            self.spans += len(spans)

    @property
    def open_traces(self) -> int:
        return len(self._open)

    def evict(self, now: float, idle_s: float | None = None) -> int:
        """Write out the traces without a span for ``idle_s`` (default: the table's)."""
        cutoff = now - (self.idle_s if idle_s is None else idle_s)
        with self._lock:
            done = [tid for tid, t in self._open.items() if t.last <= cutoff]
            rows = [self._open.pop(tid).row(tid) for tid in done]
        if rows:
            columns = zip(*rows, strict=True)
            self._writer.write(dict(zip(TRACE_SCHEMA.names, map(list, columns), strict=True)))
        return len(rows)

    def close(self) -> int:
        """Write every trace out and compact the parts into one row per trace; the rows."""
        self.evict(float("inf"), 0.0)
        return finish(self.final)


