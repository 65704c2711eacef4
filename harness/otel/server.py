"""The HTTP server of the OTLP receiver (it runs in the receiver's own process).

It serves, on ``host`` (127.0.0.1 by default):

* ``POST /v1/traces`` — OTLP/HTTP traces, ``application/x-protobuf`` or ``application/json``,
  optionally ``Content-Encoding: gzip``; answered with an ``ExportTraceServiceResponse`` in
  the request's encoding (``partial_success.rejected_spans`` when spans had no valid trace id);
* ``POST /v1/metrics``, ``POST /v1/logs`` — 200 with an empty success (SDKs may send them);
* ``GET /ready`` — 200 once serving;
* ``POST /-/stack-stopped`` (spans arriving from now on are counted late) and ``POST /-/stop``
  (body: grace seconds; waits until no span arrived for ``QUIET_S`` or the grace ran out,
  writes the artifacts, answers the stats, then calls ``on_stop``) — for the harness only
  (they need the token header).

A bad payload is answered 400 (garbage), 413 (too large) or 415 (unsupported content type)
with one JSON message, and counted; the server keeps serving either way. An export that comes
in while the server stops (after ``traces.parquet`` is being written) is answered 503 and its
spans are counted as rejected, never silently dropped.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from harness.artifacts.traces import OTEL_STATS, TRACES
from harness.errors import MeteringError
from harness.otel.decode import Decoded, InvalidOtlp, OtlpTooLarge, decode_traces, inflate
from harness.otel.traces import TraceTable
from harness.stack.sidecar import OwnedServer, ReplyHandler
from harness.util import atomic_write_json

__all__ = ["MAX_BODY", "OTEL_STATS", "STOP_PATH", "STOPPED_PATH", "TOKEN_HEADER", "OtlpServer"]

LOG = logging.getLogger(__name__)
TRACES_PATH = "/v1/traces"
SIGNAL_PATHS = ("/v1/metrics", "/v1/logs")
STOP_PATH = "/-/stop"
STOPPED_PATH = "/-/stack-stopped"
TOKEN_HEADER = "X-Harness-Token"
MAX_BODY = 16 * 1024 * 1024
INFLATE_FACTOR = 8
QUIET_S = 0.5  # stop: no span for this long means the exporters have flushed
EVICT_EVERY_S = 1.0


class Stats:
    """What the receiver saw; written to ``otel.json`` (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.payloads = self.rejected_payloads = self.rejected_spans = self.late_spans = 0
        self.first_error: str | None = None
        self.last_span_at = 0.0
        self.stack_stopped_at: float | None = None

    def reject(self, message: str, spans: int = 0, whole: bool = True) -> None:
        """A refused payload (``whole``) and/or ``spans`` refused spans."""
        with self.lock:
            self.rejected_payloads += whole
            self.rejected_spans += spans
            self.first_error = self.first_error or message

    def as_dict(self, table: TraceTable) -> dict[str, Any]:
        with self.lock:
            return {"spans": table.spans, "payloads": self.payloads,
                    "rejected_payloads": self.rejected_payloads,
                    "rejected_spans": self.rejected_spans, "late_spans": self.late_spans,
                    "first_error": self.first_error, "stack_stopped_at": self.stack_stopped_at,
                    "open_traces": table.open_traces}  # fmt: skip


class OtlpServer:
    """Serves in a thread from construction until :meth:`stop`; writes into ``run_dir``."""

    def __init__(self, run_dir: Path, token: str, *, host: str = "127.0.0.1",
                 max_body: int = MAX_BODY, idle_s: float = 10.0) -> None:  # fmt: skip
        self.run_dir = run_dir
        self.token = token
        self.max_body = max_body
        self.on_stop: Callable[[], None] = lambda: None
        self.table = TraceTable(run_dir / TRACES, idle_s)
        self.stats = Stats()
        self.final: dict[str, Any] = {}  # the stats answered to the stop request
        self._closed = threading.Event()
        self._accepting = threading.Lock()  # held while spans are added; stop() takes it last
        self._closing = False
        try:
            self._server = OwnedServer[OtlpServer]((host, 0), _Handler, self)
        except OSError as exc:
            raise MeteringError(f"cannot start the OTLP receiver on {host} ({exc})") from exc
        self._threads = [
            threading.Thread(target=self._server.serve_forever, args=(0.1,), name="otlp-http",
                             daemon=True),
            threading.Thread(target=self._evict_loop, name="otlp-evict", daemon=True),
        ]  # fmt: skip
        for thread in self._threads:
            thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def accept(self, decoded: Decoded) -> bool:
        """Add one export's spans; False once the receiver is stopping (nothing added)."""
        with self._accepting:
            if self._closing:
                return False
            self._add(decoded)
        return True

    def _add(self, decoded: Decoded) -> None:
        now = time.time()
        self.table.add(decoded.spans, now)
        with self.stats.lock:
            self.stats.payloads += 1
            if decoded.spans:
                self.stats.last_span_at = now
            if self.stats.stack_stopped_at is not None:
                self.stats.late_spans += len(decoded.spans)
        if decoded.rejected:  # partial success: the payload itself was accepted
            self.stats.reject(decoded.reason or "rejected spans", decoded.rejected, whole=False)

    def drain(self, grace_s: float) -> bool:
        """Wait until no span arrived for QUIET_S, at most ``grace_s``; True when quiet."""
        deadline = time.time() + grace_s
        while True:
            now = time.time()
            with self.stats.lock:
                quiet = now - self.stats.last_span_at >= QUIET_S
            if quiet:
                return True
            if now >= deadline:
                return False
            time.sleep(min(0.05, deadline - now))

    def write_stats(self, **extra: object) -> dict[str, Any]:
        data = self.stats.as_dict(self.table) | extra
        atomic_write_json(self.run_dir / OTEL_STATS, data)
        return data

    def stop(self) -> int:
        """Stop serving, write ``traces.parquet`` and ``otel.json``; returns the traces."""
        with self._accepting:  # an export being added finishes first; later ones get a 503
            self._closing = True
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        traces = self.table.close()
        self.write_stats(**(self.final | {"traces": traces, "open_traces": 0}))
        return traces

    def _evict_loop(self) -> None:
        while not self._closed.wait(EVICT_EVERY_S):
            try:
                self.table.evict(time.time())
                self.write_stats()
            except Exception as exc:  # a full disk must not end the receiver
                LOG.error("OTLP receiver: cannot write traces: %s", exc)



class _Handler(ReplyHandler):
    log_prefix = "OTLP receiver"
    server: OwnedServer[OtlpServer]
    timeout = 30
    protocol_version = "HTTP/1.1"  # exporters keep their connection
    server_version = "harness-otlp-receiver"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if urlsplit(self.path).path == "/ready":
            self._reply(HTTPStatus.OK, b"ready\n", "text/plain")
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such path: {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        known = (TRACES_PATH, STOP_PATH, STOPPED_PATH, *SIGNAL_PATHS)
        if path not in known:
            raw = self.headers.get("Content-Length", "0").strip()
            self._discard(int(raw) if raw.isdigit() else 1 << 30)
            self._error(HTTPStatus.NOT_FOUND, f"no such path: {path}")
            return
        body = self._read_body()
        if body is None:
            return
        if path in (STOP_PATH, STOPPED_PATH):
            self._control(path, body)
        elif path in SIGNAL_PATHS:
            self._reply(HTTPStatus.OK, b"{}" if self._is_json() else b"", self._content_type())
        else:
            self._traces(body)

    def _traces(self, body: bytes) -> None:
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind not in ("application/x-protobuf", "application/protobuf", "application/json"):
            self._reject(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                         f"unsupported Content-Type {kind!r}: send application/x-protobuf "
                         "or application/json")  # fmt: skip
            return
        limit = self.server.receiver.max_body * INFLATE_FACTOR
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        try:
            decoded = decode_traces(inflate(body, encoding, limit), kind == "application/json")
        except OtlpTooLarge as exc:
            self._reject(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc))
            return
        except InvalidOtlp as exc:
            self._reject(HTTPStatus.BAD_REQUEST, str(exc))
            return
        except Exception as exc:  # a payload that trips the decoder must not stop the server
            self._reject(HTTPStatus.BAD_REQUEST,
                         f"cannot decode the payload ({type(exc).__name__}: {exc})")  # fmt: skip
            return
        if not self.server.receiver.accept(decoded):
            self._reject(HTTPStatus.SERVICE_UNAVAILABLE, "the receiver is stopping: spans not "
                         f"stored ({len(decoded.spans)} counted as rejected)", len(decoded.spans))
            return
        self._reply(HTTPStatus.OK, _response(decoded, kind == "application/json"), kind)

    def _control(self, path: str, body: bytes) -> None:
        receiver = self.server.receiver
        given = self.headers.get(TOKEN_HEADER, "")
        if not receiver.token or not hmac.compare_digest(given.encode(), receiver.token.encode()):
            self._error(HTTPStatus.FORBIDDEN, "bad or missing token")
            return
        if path == STOPPED_PATH:
            with receiver.stats.lock:
                receiver.stats.stack_stopped_at = time.time()
            self._reply(HTTPStatus.OK, b"{}", "application/json")
            return
        try:
            grace_s = min(max(float(body.decode("utf-8", "replace").strip() or 0), 0.0), 600.0)
        except ValueError:
            grace_s = 0.0
        drained = receiver.drain(grace_s)
        answer = receiver.write_stats(drained=drained, grace_s=grace_s, stopped_at=time.time())
        receiver.final = answer
        self._reply(HTTPStatus.OK, json.dumps(answer).encode(), "application/json")
        receiver.on_stop()  # the process stops serving, then writes traces.parquet

    def _read_body(self) -> bytes | None:
        raw = self.headers.get("Content-Length")
        if raw is None or not raw.strip().isdigit():
            self._reject(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
            self.close_connection = True
            return None
        length, limit = int(raw), self.server.receiver.max_body
        if length > limit:
            self._discard(length, 2 * limit)
            self._reject(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         f"body of {length} bytes is over the {limit}-byte limit")  # fmt: skip
            return None
        return self.rfile.read(length)

    def _discard(self, length: int, most: int = 1 << 20) -> None:
        """Read and drop a refused body (up to ``most``) so the client reads our answer."""
        if length > most:
            self.close_connection = True
            return
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)

    def _is_json(self) -> bool:
        return self.headers.get("Content-Type", "").lower().startswith("application/json")

    def _content_type(self) -> str:
        return "application/json" if self._is_json() else "application/x-protobuf"

    def _reject(self, status: HTTPStatus, message: str, spans: int = 0) -> None:
        LOG.info("OTLP receiver: %d %s", status, message)
        self.server.receiver.stats.reject(f"{int(status)} {message}", spans)
        self._error(status, message)

    def _error(self, status: HTTPStatus, message: str) -> None:
        # google.rpc.Status as JSON: one clear message (SDKs log it)
        body = json.dumps({"code": int(status), "message": message}).encode("utf-8")
        self._reply(status, body, "application/json")



def _response(decoded: Decoded, as_json: bool) -> bytes:
    """``ExportTraceServiceResponse``: empty, or partial_success with the rejected count."""
    if as_json:
        if not decoded.rejected:
            return b"{}"
        partial = {"rejectedSpans": str(decoded.rejected), "errorMessage": decoded.reason or ""}
        return json.dumps({"partialSuccess": partial}).encode()
    response = ExportTraceServiceResponse()
    if decoded.rejected:
        response.partial_success.rejected_spans = decoded.rejected
        response.partial_success.error_message = decoded.reason or ""
    return response.SerializeToString()
