"""One child process of the local runtime: started in its own session, logged to a file,
stopped with its whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from harness.errors import TargetError

STOP_GRACE_S = 5.0


class ChildProcess:
    """A process group the harness owns; `stop()` is idempotent and never raises."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_path: Path,
                 stop_signal: int = signal.SIGTERM) -> None:
        self.name = name
        self.log_path = log_path
        self.stop_signal = stop_signal
        log = log_path.open("ab")
        try:
            self.popen = subprocess.Popen(
                list(argv), env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as exc:
            raise TargetError(f"{name}: cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
        finally:
            log.close()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def tail(self, lines: int = 15) -> str:
        """The last lines the process wrote (stdout and stderr), for error messages."""
        try:
            text = self.log_path.read_bytes()[-16384:].decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def listens_on(self, port: int) -> bool:
        """True when this process or one of its children has a LISTEN socket on ``port``."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return False
        for proc in procs:
            try:
                conns = proc.net_connections(kind="inet")
            except psutil.Error:
                continue
            if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                   for c in conns):
                return True
        return False

    def send_signal(self, sig: int) -> None:
        """Signal the whole process group (pause/resume/kill faults)."""
        if self.popen.poll() is None:
            _signal_group(self.pid, sig)

    def stop(self) -> None:
        """Signal the whole group, wait, then SIGKILL what is left."""
        if self.popen.poll() is None:
            _signal_group(self.pid, signal.SIGCONT)  # a paused process cannot stop itself
            _signal_group(self.pid, self.stop_signal)
            deadline = time.monotonic() + STOP_GRACE_S
            while self.popen.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        _signal_group(self.pid, signal.SIGKILL)  # stray grandchildren in the group
        if self.popen.poll() is None:
            self.popen.wait(timeout=STOP_GRACE_S)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_init(name: str, argv: Sequence[str], env: dict[str, str], timeout: float) -> None:
    """Run a preparation command (e.g. initdb) to completion or raise TargetError."""
    try:
        done = subprocess.run(list(argv), env=env, capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetError(f"{name}: preparation step {argv[0]!r} failed: {exc}") from exc
    if done.returncode != 0:
        out = (done.stdout + done.stderr).decode("utf-8", "replace").strip().splitlines()[-10:]
        raise TargetError(
            f"{name}: preparation step {' '.join(argv[:2])} exited with {done.returncode}:\n"
            + "\n".join(f"    {line}" for line in out)
        )
