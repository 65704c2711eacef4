"""``python -m targets.blackbox``: an uninstrumented HTTP service whose calls burn known CPU.

It stands in for the services users bring (nginx, Go, Java, vendor images): it sends no
``Server-Timing`` and no ``X-Served-By``, and imports nothing of the harness. Only the standard
library: ``http.server`` with HTTP/1.1 keep-alive, one thread per connection.

==========================  ================================================================
``GET /health``             200 ``ok``
``GET /<anything>?ms=C``    spins until the handler thread's CPU clock advanced by C ms
                            (C = 0: answers at once), then answers ``ok``
``GET /truth``              the CPU each path really cost: ``{"by_path": {path: {"calls": n,
                            "cpu_ms": total}}}``, measured per request with the thread's CPU
                            clock from reading the request line to the last byte written
==========================  ================================================================

``/truth`` is the ground truth the black-box attribution is checked against: it includes what
the server itself spends per request (parsing, writing), which a cost per call must include.
``/health`` and ``/truth`` are not counted. With ``TRUTH_FILE`` set, the same document is
written there when the server stops (SIGTERM / SIGINT), so a finished run can be checked.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from time import thread_time_ns
from types import FrameType
from urllib.parse import parse_qs, urlsplit

MAX_MS = 10_000.0
UNCOUNTED = frozenset({"/health", "/truth"})


class Truth:
    """CPU nanoseconds and calls per path, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[str, list[int]] = {}

    def add(self, path: str, cpu_ns: int) -> None:
        with self._lock:
            entry = self._by_path.setdefault(path, [0, 0])
            entry[0] += 1
            entry[1] += cpu_ns

    def document(self) -> dict[str, object]:
        with self._lock:
            return {"by_path": {p: {"calls": n, "cpu_ms": ns / 1e6}
                                for p, (n, ns) in sorted(self._by_path.items())}}


TRUTH = Truth()


def burn(ms: float) -> None:
    """Spin until this thread's CPU clock advanced by ``ms`` milliseconds."""
    end = thread_time_ns() + int(ms * 1e6)
    x = 0
    while thread_time_ns() < end:
        for i in range(200):
            x ^= i
    del x


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "blackbox/1"

    def handle_one_request(self) -> None:
        start = thread_time_ns()
        self.path = ""
        super().handle_one_request()
        path = urlsplit(self.path).path if self.path else ""
        if path and path not in UNCOUNTED:
            TRUTH.add(path, thread_time_ns() - start)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        if url.path == "/health":
            return self._answer(200, b"ok")
        if url.path == "/truth":
            return self._answer(200, json.dumps(TRUTH.document()).encode())
        try:
            ms = float(parse_qs(url.query).get("ms", ["0"])[0])
        except ValueError:
            return self._answer(400, b"ms must be a number")
        if not 0 <= ms <= MAX_MS:
            return self._answer(400, b"ms out of range")
        burn(ms)
        self._answer(200, b"ok")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None


def main() -> int:
    host = os.environ.get("HARNESS_BIND_HOST") or "127.0.0.1"
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        truth_file = os.environ.get("TRUTH_FILE")
        if truth_file:
            tmp = f"{truth_file}.tmp"
            with open(tmp, "w", encoding="utf-8") as out:
                json.dump(TRUTH.document(), out)
            os.replace(tmp, truth_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
