"""The HTTP server of the profile receiver (it runs in the receiver's own process).

It serves, on 127.0.0.1:

* ``POST /push.v1.PusherService/Push`` — the push API of ``pyroscope-io`` ≥ 1.0 (Connect
  unary, ``application/proto`` or JSON, gzip body; each raw profile a pprof, gzipped or not);
* ``POST /ingest`` — the legacy API (``format=folded`` or ``pprof``, or a multipart upload);
* ``GET /ready`` — 200 once serving;
* ``POST /-/phase`` (body: the phase name) and ``POST /-/stop`` (body: drain seconds; answers
  ``{"drained": bool}`` after the drain, then calls ``on_stop``) — control, for the harness
  only (they need the token header).

A bad payload is answered 400 ``{"code": "invalid_argument", "message": …}``, a body over
``max_body`` bytes (or inflating past 8× that) 413; the server keeps serving either way.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

from harness.errors import HarnessError, MeteringError
from harness.profiling.ingest import Upload, decode_ingest, decode_push
from harness.profiling.proto import InvalidProfile, PayloadTooLarge
from harness.profiling.store import ProfileStore
from harness.stack.sidecar import OwnedServer, ReplyHandler

__all__ = ["MAX_BODY", "PHASE_PATH", "PUSH_PATH", "STOP_PATH", "TOKEN_HEADER", "ReceiverServer"]

LOG = logging.getLogger(__name__)
PUSH_PATH = "/push.v1.PusherService/Push"
INGEST_PATH = "/ingest"
PHASE_PATH = "/-/phase"
STOP_PATH = "/-/stop"
TOKEN_HEADER = "X-Harness-Token"
MAX_BODY = 32 * 1024 * 1024
MAX_PHASE = 200
INFLATE_FACTOR = 8  # a gzip body may inflate to this many times MAX_BODY
UPLOAD_INTERVAL_S = 10.0  # the agents' default upload_interval
UPLOAD_GRACE_S = 2.0  # from a window's end to its upload having arrived


class ReceiverServer:
    """Serves in a thread from construction until :meth:`stop`; stores into ``out_dir``.

    ``phase`` is the run's current phase: each upload is stored under the phase current
    when it arrives. ``token`` guards the control path.
    """

    def __init__(self, out_dir: Path, token: str, phase: str = "run", *,
                 max_body: int = MAX_BODY, upload_interval_s: float = UPLOAD_INTERVAL_S,
                 upload_grace_s: float = UPLOAD_GRACE_S) -> None:  # fmt: skip
        self.phase = phase
        self.token = token
        self.on_stop: Callable[[], None] = lambda: None
        self.store = ProfileStore(out_dir, lambda: self.phase)
        self.max_body = max_body
        self.upload_interval_s = upload_interval_s
        self.upload_grace_s = upload_grace_s
        self._agents: dict[str, _Agent] = {}
        self._agents_lock = threading.Lock()
        try:
            self._server = OwnedServer[ReceiverServer](("127.0.0.1", 0), _Handler, self)
        except OSError as exc:
            raise MeteringError(f"cannot start the profile receiver on 127.0.0.1 ({exc})") \
                from exc
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        name="profile-receiver", daemon=True)  # fmt: skip
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def drain(self, drain_s: float) -> bool:
        """Wait (at most ``drain_s``) for each agent's upload of the window holding *now*.

        Agents upload every interval and skip windows without samples. An agent is drained
        once it has uploaded a window reaching the moment this was called, or once its
        window holding that moment has closed (plus a grace period) with no upload. With
        no agent seen yet the whole ``drain_s`` is waited. True when all are drained.
        """
        since = time.time()
        deadline = since + drain_s
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

    def stop(self) -> None:
        """Stop serving and write what is still pending (the merged pprof files)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.store.close()

    def accept(self, uploads: list[Upload]) -> None:
        """Store one request's uploads and note which agents sent them (for draining)."""
        arrival = time.time()
        self.store.add(uploads, arrival)
        with self._agents_lock:
            for upload in uploads:
                agent = self._agents.setdefault(upload.agent, _Agent())
                prof = upload.profile
                end_ns = prof.start_ns + prof.duration_ns if prof is not None else 0
                agent.saw(end_ns / 1e9 if end_ns else arrival)


class _Agent:
    """The end of the last upload window of one agent (windows are aligned to its start)."""

    __slots__ = ("window_end",)

    def __init__(self) -> None:
        self.window_end = 0.0

    def saw(self, window_end: float) -> None:
        self.window_end = max(self.window_end, window_end)

    def drained(self, since: float, now: float, interval: float, grace: float) -> bool:
        if self.window_end >= since:
            return True
        windows = math.ceil((since - self.window_end) / interval)
        return now >= self.window_end + windows * interval + grace



class _Handler(ReplyHandler):
    log_prefix = "profile receiver"
    server: OwnedServer[ReceiverServer]
    timeout = 30  # a stalled client cannot hold a thread forever
    server_version = "harness-profile-receiver"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if urlsplit(self.path).path == "/ready":
            self._reply(HTTPStatus.OK, b"ready\n", "text/plain")
        else:
            self._error(HTTPStatus.NOT_FOUND, "not_found", f"no such path: {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        if parts.path not in (PUSH_PATH, INGEST_PATH, PHASE_PATH, STOP_PATH):
            self._error(HTTPStatus.NOT_FOUND, "not_found", f"no such path: {parts.path}")
            return
        body = self._read_body()
        if body is None:
            return
        if parts.path in (PHASE_PATH, STOP_PATH):
            self._control(parts.path, body)
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

    def _control(self, path: str, body: bytes) -> None:
        receiver = self.server.receiver
        given = self.headers.get(TOKEN_HEADER, "")
        if not receiver.token or not hmac.compare_digest(given.encode(), receiver.token.encode()):
            self._error(HTTPStatus.FORBIDDEN, "permission_denied", "bad or missing token")
            return
        text = body.decode("utf-8", "replace").strip()
        if path == STOP_PATH:
            try:
                drain_s = min(max(float(text or 0), 0.0), 3600.0)
            except ValueError:
                drain_s = 0.0
            answer = {"drained": receiver.drain(drain_s)}
            self._reply(HTTPStatus.OK, json.dumps(answer).encode(), "application/json")
            receiver.on_stop()
        elif not text or len(text) > MAX_PHASE:
            self._error(HTTPStatus.BAD_REQUEST, "invalid_argument", "phase: 1-200 characters")
        else:
            receiver.phase = text
            self._reply(HTTPStatus.OK, b"{}", "application/json")

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
        LOG.info("profile receiver: %d %s", status, message)
        self.server.receiver.store.reject(f"{int(status)} {message}")
        self._error(status, code, message)

    def _error(self, status: HTTPStatus, code: str, message: str) -> None:
        body = json.dumps({"code": code, "message": message}).encode("utf-8")
        self._reply(status, body, "application/json")

