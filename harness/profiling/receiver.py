"""The embedded Pyroscope receiver: agents in the targets push CPU profiles to it.

It serves, on 127.0.0.1:

* ``POST /push.v1.PusherService/Push`` — the push API of ``pyroscope-io`` ≥ 1.0 (Connect
  unary, ``application/proto`` or JSON, gzip body; each raw profile a pprof, gzipped or not);
* ``POST /ingest`` — the legacy API (``format=folded`` or ``pprof``, or a multipart upload);
* ``GET /ready`` — 200 once serving.

A bad payload is answered 400 ``{"code": "invalid_argument", "message": …}``, a body over
``max_body`` bytes (or inflating past 8× that) 413; the receiver keeps serving either way.

It runs in the harness process, in a ``ThreadingHTTPServer`` thread. Under gevent's monkey
patching (the harness runs Locust) the threads are greenlets and the sockets cooperative, so
it still serves concurrently; decoding one upload takes milliseconds of CPU every upload
interval, too little to disturb the load generator. In-process, the phase of the run is a
plain callable and the receiver shares the run's lifetime: nothing can be left running.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from harness.errors import HarnessError, MeteringError
from harness.profiling.ingest import Upload, decode_ingest, decode_push
from harness.profiling.layout import ProfileIndex
from harness.profiling.proto import InvalidProfile, PayloadTooLarge
from harness.profiling.store import PhaseSource, ProfileStore

__all__ = ["MAX_BODY", "PUSH_PATH", "ProfileReceiver"]

LOG = logging.getLogger(__name__)
PUSH_PATH = "/push.v1.PusherService/Push"
INGEST_PATH = "/ingest"
MAX_BODY = 32 * 1024 * 1024
INFLATE_FACTOR = 8  # a gzip body may inflate to this many times MAX_BODY
UPLOAD_INTERVAL_S = 10.0  # the agents' default upload_interval
UPLOAD_GRACE_S = 2.0  # from a window's end to its upload having arrived


class ProfileReceiver:
    """Receives profiles into ``out_dir`` (``RUN_DIR/profiles``) until :meth:`stop`.

    ``phase()`` names the run's current phase; each upload is stored under the phase current
    when it arrives. The server is listening once the constructor returns; ``url`` is what
    targets get as ``HARNESS_PYROSCOPE_URL``.
    """

    def __init__(self, out_dir: Path, phase: PhaseSource = lambda: "run", *,
                 max_body: int = MAX_BODY, upload_interval_s: float = UPLOAD_INTERVAL_S,
                 upload_grace_s: float = UPLOAD_GRACE_S) -> None:  # fmt: skip
        self.store = ProfileStore(out_dir, phase)
        self.max_body = max_body
        self.upload_interval_s = upload_interval_s
        self.upload_grace_s = upload_grace_s
        self._agents: dict[str, _Agent] = {}
        self._agents_lock = threading.Lock()
        try:
            self._server = _Server(("127.0.0.1", 0), _Handler, self)
        except OSError as exc:
            raise MeteringError(f"cannot start the profile receiver on 127.0.0.1 ({exc})") \
                from exc
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        name="profile-receiver", daemon=True)  # fmt: skip
        self._thread.start()
        self._stopped = False

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def index(self) -> ProfileIndex:
        """A snapshot of what is stored so far (uploads, rejections, entries)."""
        return self.store.index.model_copy(deep=True)

    def stop(self, drain_s: float = 15.0) -> bool:
        """Wait for the agents' last upload (at most ``drain_s``), then close the server.

        Agents upload every interval, and skip windows without samples. An agent is drained
        once it has uploaded a window that reaches the moment ``stop`` was called, or once
        its window holding that moment has closed (plus a grace period) with no upload.
        With no agent seen yet the whole ``drain_s`` is waited. True when all drained.
        """
        if self._stopped:
            return True
        now = time.time()
        deadline = now + drain_s
        drained = self._wait_drained(now, deadline)
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        return drained

    def _wait_drained(self, since: float, deadline: float) -> bool:
        while True:
            with self._agents_lock:
                agents = list(self._agents.values())
            now = time.time()
            if agents and all(
                agent.drained(since, now, self.upload_interval_s, self.upload_grace_s)
                for agent in agents
            ):
                return True
            if now >= deadline:
                return False
            time.sleep(min(0.1, deadline - now))

    def __enter__(self) -> ProfileReceiver:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.stop(drain_s=0)

    def accept(self, uploads: list[Upload]) -> None:
        """Store one request's uploads and note which agents sent them (for draining)."""
        arrival = time.time()
        self.store.add(uploads, arrival)
        with self._agents_lock:
            for upload in uploads:
                agent = self._agents.setdefault(upload.agent, _Agent())
                end_ns = upload.profile.start_ns + upload.profile.duration_ns \
                    if upload.profile is not None else 0
                agent.saw(end_ns / 1e9 if end_ns else arrival)


class _Agent:
    """When one agent's uploads arrived, and the end of the last window they covered."""

    __slots__ = ("covered_until", "window_end")

    def __init__(self) -> None:
        self.covered_until = 0.0
        self.window_end = 0.0

    def saw(self, window_end: float) -> None:
        self.covered_until = max(self.covered_until, window_end)
        self.window_end = max(self.window_end, window_end)

    def drained(self, since: float, now: float, interval: float, grace: float) -> bool:
        if self.covered_until >= since:
            return True
        windows = math.ceil((since - self.window_end) / interval)  # windows are agent-aligned
        return now >= self.window_end + windows * interval + grace


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # replicas started together upload together

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 receiver: ProfileReceiver) -> None:  # fmt: skip
        self.receiver = receiver
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 30  # a stalled client cannot hold a thread forever
    server_version = "harness-profile-receiver"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if urlsplit(self.path).path == "/ready":
            self._reply(HTTPStatus.OK, b"ready\n", "text/plain")
        else:
            self._error(HTTPStatus.NOT_FOUND, "not_found", f"no such path: {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        if parts.path not in (PUSH_PATH, INGEST_PATH):
            self._error(HTTPStatus.NOT_FOUND, "not_found", f"no such path: {parts.path}")
            return
        body = self._read_body()
        if body is None:
            return
        try:
            uploads = self._decode(parts.path, parts.query, body)
        except PayloadTooLarge as exc:
            self._reject(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "resource_exhausted", str(exc))
        except InvalidProfile as exc:
            self._reject(HTTPStatus.BAD_REQUEST, "invalid_argument", str(exc))
        except Exception as exc:  # a payload that trips the decoder must not stop the server
            self._reject(HTTPStatus.BAD_REQUEST, "invalid_argument",
                         f"cannot decode the payload ({type(exc).__name__}: {exc})")  # fmt: skip
        else:
            self._store(uploads, json_reply=parts.path == PUSH_PATH and self._is_json())

    def _decode(self, path: str, query: str, body: bytes) -> list[Upload]:
        limit = self.server.receiver.max_body * INFLATE_FACTOR
        content_type = self.headers.get("Content-Type", "")
        if path == PUSH_PATH:
            encoding = self.headers.get("Content-Encoding", "").strip().lower()
            return decode_push(body, content_type, encoding, limit)
        return [decode_ingest(query, body, content_type, limit)]

    def _store(self, uploads: list[Upload], json_reply: bool) -> None:
        try:
            self.server.receiver.accept(uploads)
        except (OSError, HarnessError) as exc:
            LOG.error("profile receiver: cannot store an upload: %s", exc)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal", f"cannot store: {exc}")
            return
        if json_reply:
            self._reply(HTTPStatus.OK, b"{}", "application/json")
        else:
            self._reply(HTTPStatus.OK, b"", "application/proto")

    def _is_json(self) -> bool:
        return self.headers.get("Content-Type", "").lower().startswith("application/json")

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering 411/413 for a missing or big length."""
        raw = self.headers.get("Content-Length")
        if raw is None or not raw.strip().isdigit():
            self._reject(HTTPStatus.LENGTH_REQUIRED, "invalid_argument",
                         "a Content-Length header is required")  # fmt: skip
            return None
        length, limit = int(raw), self.server.receiver.max_body
        if length > limit:
            self._discard(length, 2 * limit)
            self._reject(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "resource_exhausted",
                         f"body of {length} bytes is over the {limit}-byte limit")  # fmt: skip
            return None
        return self.rfile.read(length)

    def _discard(self, length: int, most: int) -> None:
        """Read and drop a refused body (up to ``most``) so the client reads our answer."""
        left = length if length <= most else 0
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)

    def _reject(self, status: HTTPStatus, code: str, message: str) -> None:
        LOG.debug("profile receiver: %d %s", status, message)
        self.server.receiver.store.reject(f"{int(status)} {message}")
        self._error(status, code, message)

    def _error(self, status: HTTPStatus, code: str, message: str) -> None:
        body = json.dumps({"code": code, "message": message}).encode("utf-8")
        self._reply(status, body, "application/json")

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        LOG.debug("profile receiver: " + format, *args)

