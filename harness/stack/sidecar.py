"""Helper processes of the harness's own (the Pyroscope and OTLP receivers): both sides.

A receiver runs in its own process (the harness process runs gevent; decoding uploads there
would stall every simulated user). The harness side starts it as a :class:`ChildProcess`,
waits for the ready file it writes (:func:`wait_ready`) and steers it with token-guarded
POSTs (:func:`post_control`); the child side serves until told to stop, SIGTERM, or the
harness is gone (:func:`serve_until_stopped`). :class:`OwnedServer` and :class:`ReplyHandler`
are the HTTP server and handler bases both receivers serve with.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Generic, TypeVar

from harness.errors import MeteringError
from harness.stack.process import ChildProcess
from harness.util import atomic_write_json

LOG = logging.getLogger("harness.stack.sidecar")


def wait_ready(ready: Path, proc: ChildProcess, what: str, timeout: float) -> dict[str, Any]:
    """The document the child wrote to ``ready`` once it listens (the file is then removed);
    MeteringError when it exited first or did not start in ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.exit_code() is not None:
            raise MeteringError(f"the {what} exited with {proc.exit_code()}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise MeteringError(f"the {what} did not start in {timeout:g} s")
        time.sleep(0.05)
    document: dict[str, Any] = json.loads(ready.read_text(encoding="utf-8"))
    ready.unlink(missing_ok=True)
    return document


def post_control(base: str, path: str, body: bytes, token: tuple[str, str], timeout: float,
                 what: str, tail: Callable[[], str]) -> bytes:
    """POST ``body`` to a receiver's control ``path`` with its ``(header, token)``; the answer,
    or MeteringError naming the refusal or the silence (with the end of its log)."""
    request = urllib.request.Request(base + path, body, {token[0]: token[1]}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace")
        raise MeteringError(f"the {what} refused {path}: {exc.code} {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise MeteringError(f"the {what} at {base} does not answer ({exc}); its log ends:\n"
                            f"{tail()}") from exc


def serve_until_stopped(stop_server: Callable[[], object], stopped: threading.Event,
                        ready: Path, document: dict[str, Any], parent_pid: int) -> None:
    """The child's main loop: announce readiness, then wait for ``stopped`` (set by the
    server's stop request or SIGTERM) or for the harness to disappear; stop the server."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harness stops us in order
    atomic_write_json(ready, document | {"pid": os.getpid()})
    while not stopped.wait(1.0):
        if os.getppid() != parent_pid:
            break  # the harness died without stopping us
    stop_server()


Owner = TypeVar("Owner")


class OwnedServer(ThreadingHTTPServer, Generic[Owner]):
    """A threading HTTP server whose handlers reach the object that owns it (``receiver``)."""

    daemon_threads = True
    request_queue_size = 128  # replicas started together upload together

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 receiver: Owner) -> None:  # fmt: skip
        self.receiver = receiver
        super().__init__(address, handler)


class ReplyHandler(BaseHTTPRequestHandler):
    """An HTTP handler that answers whole bodies and logs under ``log_prefix``."""

    log_prefix = "receiver"

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        LOG.debug(f"{self.log_prefix}: " + format, *args)
