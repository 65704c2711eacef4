"""The embedded OTLP/HTTP receiver, in its own process: ``python -m harness.otel.receiver``.

:class:`OtlpReceiver` starts it, hands out its ``endpoint`` (the targets'
``OTEL_EXPORTER_OTLP_ENDPOINT``), tells it when the stack is down, and stops it after the
SDKs' last export. The server itself is :class:`~harness.otel.server.OtlpServer`.

Why a process of its own: the harness process runs Locust on gevent, and decoding protobuf
spans is CPU-bound Python. In-process, every export would run on the gevent hub and stall
every simulated user while it decodes (a target sending 100 spans per request sends about
100× more bytes to the receiver than the load generator reads back; see
``bench/otlp_receiver.py``). In its own process it costs the load generator nothing but a
core's share. As the profile receiver, it runs in its own session (a Ctrl-C reaches only the
harness, which then stops it in order) and exits by itself when the harness disappears.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.errors import MeteringError, TargetError
from harness.otel.server import MAX_BODY, STOP_PATH, STOPPED_PATH, TOKEN_HEADER, OtlpServer
from harness.stack.process import ChildProcess
from harness.stack.sidecar import post_control, serve_until_stopped, wait_ready

__all__ = ["OtlpReceiver", "main"]

READY_FILE = ".otel-receiver-ready.json"
LOG_FILE = "otel-receiver.log"
START_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 120.0  # writing traces.parquet of a long run takes a while
TOKEN_ENV = "HARNESS_RECEIVER_TOKEN"


class OtlpReceiver:
    """Starts the receiver process writing ``traces.parquet`` and ``otel.json`` in
    ``run_dir``. Always call :meth:`stop` (or use ``with``)."""

    def __init__(self, run_dir: Path, *, host: str = "127.0.0.1", max_body: int = MAX_BODY,
                 idle_s: float = 10.0) -> None:  # fmt: skip
        self.run_dir = run_dir
        self._token = secrets.token_hex(16)
        logs = run_dir / "logs"
        try:
            logs.mkdir(parents=True, exist_ok=True)
            (run_dir / READY_FILE).unlink(missing_ok=True)
        except OSError as exc:
            raise MeteringError(f"{run_dir}: cannot prepare the OTLP receiver ({exc})") from exc
        argv = [sys.executable, "-m", "harness.otel.receiver", "--run-dir", str(run_dir),
                "--host", host, "--max-body", str(max_body), "--idle", str(idle_s),
                "--parent-pid", str(os.getpid())]  # fmt: skip
        env = {**os.environ, TOKEN_ENV: self._token}
        try:
            self._proc = ChildProcess("otel-receiver", argv, env, logs / LOG_FILE)
        except TargetError as exc:
            raise MeteringError(str(exc)) from exc
        self._stopped = False
        self.stats: dict[str, Any] = {}
        try:
            self.port = self._wait_ready()
        except BaseException:
            self._proc.stop()
            raise
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def _wait_ready(self) -> int:
        document = wait_ready(self.run_dir / READY_FILE, self._proc, "OTLP receiver",
                              START_TIMEOUT_S)
        return int(document["port"])

    def stack_stopped(self) -> None:
        """Spans arriving from now on are counted late (the stack is down)."""
        self._control(STOPPED_PATH, b"", timeout=5)

    def stop(self, grace_s: float = 5.0) -> dict[str, Any]:
        """Wait for the exporters' last spans (quiet, or ``grace_s``), write the artifacts,
        stop the process; returns the receiver's stats (empty when it had died)."""
        if self._stopped:
            return self.stats
        self._stopped = True
        try:
            self.stats = json.loads(self._control(STOP_PATH, str(grace_s).encode(),
                                                  timeout=grace_s + 10))  # fmt: skip
            deadline = time.monotonic() + EXIT_TIMEOUT_S
            while self._proc.exit_code() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        except (MeteringError, ValueError):
            self.stats = {}
        finally:
            self._proc.stop()
        return self.stats

    def _control(self, path: str, body: bytes, timeout: float) -> bytes:
        return post_control(self.endpoint, path, body, (TOKEN_HEADER, self._token), timeout,
                            "OTLP receiver", self._proc.tail)

    def __enter__(self) -> OtlpReceiver:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.stop(grace_s=0)


def main(argv: list[str] | None = None) -> int:
    """The receiver process: serve until told to stop, SIGTERM, or the harness is gone."""
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stopped = threading.Event()
    try:
        server = OtlpServer(args.run_dir, os.environ.get(TOKEN_ENV, ""), host=args.host,
                            max_body=args.max_body, idle_s=args.idle)  # fmt: skip
    except MeteringError as exc:
        print(f"otel receiver: {exc}", file=sys.stderr)
        return 3
    server.on_stop = stopped.set
    serve_until_stopped(server.stop, stopped, args.run_dir / READY_FILE, {"port": server.port},
                        args.parent_pid)
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.otel.receiver")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--max-body", type=int, default=MAX_BODY)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--parent-pid", type=int, default=os.getppid())
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
