"""The embedded Pyroscope receiver, in its own process: ``python -m harness.profiling.receiver``.

:class:`ProfileReceiver` starts it, hands out its ``url`` (the targets'
``HARNESS_PYROSCOPE_URL``), tells it the run's phase, and stops it after the agents' last
upload. The server itself is :class:`~harness.profiling.server.ReceiverServer`.

Why a process of its own: the harness process runs Locust on gevent, and decoding an upload
is CPU-bound Python. In-process, that work runs on the gevent hub and stalls every simulated
user while it runs: measured here, 290–480 ms for one large upload (1000 stacks) on a busy
2-core machine, inflating the latencies the harness is there to measure. In its own process
it costs the load generator nothing but a core's share. The process is started in its own
session (a Ctrl-C reaches only the harness, which then stops it in order) and exits by itself
when the harness process disappears.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import threading
from pathlib import Path
from types import TracebackType

from harness.errors import MeteringError, TargetError
from harness.profiling.layout import ProfileIndex, load_index
from harness.profiling.server import (
    MAX_BODY,
    PHASE_PATH,
    STOP_PATH,
    TOKEN_HEADER,
    UPLOAD_GRACE_S,
    UPLOAD_INTERVAL_S,
    ReceiverServer,
)
from harness.stack.process import ChildProcess
from harness.stack.sidecar import post_control, serve_until_stopped, wait_ready

__all__ = ["ProfileReceiver", "main"]

READY_FILE = ".receiver-ready.json"
LOG_FILE = "receiver.log"
START_TIMEOUT_S = 30.0
TOKEN_ENV = "HARNESS_RECEIVER_TOKEN"


class ProfileReceiver:
    """Starts the receiver process storing into ``out_dir`` (``RUN_DIR/profiles``).

    Set :attr:`phase` whenever the run changes phase; uploads are stored under the phase
    current when they arrive. Always call :meth:`stop` (or use ``with``).
    """

    def __init__(self, out_dir: Path, phase: str = "run", *, max_body: int = MAX_BODY,
                 upload_interval_s: float = UPLOAD_INTERVAL_S,
                 upload_grace_s: float = UPLOAD_GRACE_S) -> None:  # fmt: skip
        self.out_dir = out_dir
        self._phase = phase
        self._token = secrets.token_hex(16)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / READY_FILE).unlink(missing_ok=True)
        except OSError as exc:
            raise MeteringError(f"{out_dir}: cannot create the profiles directory ({exc})") \
                from exc
        argv = [sys.executable, "-m", "harness.profiling.receiver", "--out", str(out_dir),
                "--phase", phase, "--max-body", str(max_body), "--parent-pid", str(os.getpid()),
                "--upload-interval", str(upload_interval_s), "--grace", str(upload_grace_s)]
        env = {**os.environ, TOKEN_ENV: self._token}
        try:
            self._proc = ChildProcess("profile-receiver", argv, env, out_dir / LOG_FILE)
        except TargetError as exc:
            raise MeteringError(str(exc)) from exc
        self._stopped = False
        try:
            self.url = self._wait_ready()
        except BaseException:
            self._proc.stop()
            raise

    def _wait_ready(self) -> str:
        document = wait_ready(self.out_dir / READY_FILE, self._proc, "profile receiver",
                              START_TIMEOUT_S)
        return str(document["url"])

    @property
    def phase(self) -> str:
        return self._phase

    @phase.setter
    def phase(self, name: str) -> None:
        """Tell the receiver the run's phase (stamped on the uploads that arrive from now)."""
        self._control(PHASE_PATH, name.encode("utf-8"), timeout=5)
        self._phase = name

    @property
    def index(self) -> ProfileIndex:
        """What is stored so far (uploads, rejections, entries), as on disk."""
        return load_index(self.out_dir)

    def stop(self, drain_s: float = 15.0) -> bool:
        """Wait for the agents' last upload (at most ``drain_s``), then stop the process.

        Call it before the targets stop: an agent uploads every 10 s and skips empty
        windows, so the last window of the run arrives up to 10 s after load stops. True when
        every agent seen was drained; False also when the receiver had already died.
        """
        if self._stopped:
            return True
        self._stopped = True
        try:
            answer = self._control(STOP_PATH, str(drain_s).encode(), timeout=drain_s + 10)
            drained = bool(json.loads(answer).get("drained"))
        except (MeteringError, ValueError):
            drained = False
        finally:
            self._proc.stop()
        return drained

    def _control(self, path: str, body: bytes, timeout: float) -> bytes:
        return post_control(self.url, path, body, (TOKEN_HEADER, self._token), timeout,
                            "profile receiver", self._proc.tail)

    def __enter__(self) -> ProfileReceiver:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.stop(drain_s=0)


def main(argv: list[str] | None = None) -> int:
    """The receiver process: serve until told to stop, SIGTERM, or the harness is gone."""
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stopped = threading.Event()
    server = ReceiverServer(args.out, os.environ.get(TOKEN_ENV, ""), args.phase,
                            max_body=args.max_body, upload_interval_s=args.upload_interval,
                            upload_grace_s=args.grace)  # fmt: skip
    server.on_stop = stopped.set
    serve_until_stopped(server.stop, stopped, args.out / READY_FILE, {"url": server.url},
                        args.parent_pid)
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.profiling.receiver")
    parser.add_argument("--out", type=Path, required=True, help="the profiles directory")
    parser.add_argument("--phase", default="run")
    parser.add_argument("--max-body", type=int, default=MAX_BODY)
    parser.add_argument("--parent-pid", type=int, default=os.getppid())
    parser.add_argument("--upload-interval", type=float, default=UPLOAD_INTERVAL_S)
    parser.add_argument("--grace", type=float, default=UPLOAD_GRACE_S)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
