"""Running compose: ``docker compose`` (v2) when the docker CLI has it, else ``docker-compose``
(v1). Each call is logged to a file; a failure becomes one TargetError naming the cause."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import TargetError
from harness.stack.base import Cancel

POLL_S = 0.1
VERSION_TIMEOUT_S = 20
_PORT_TAKEN = re.compile(
    r"(?:Bind for |listen tcp4? )(?P<addr>[0-9.:\[\]]+:\d+)"
    r"(?: failed: port is already allocated|: bind: address already in use)"
)


def find_compose() -> list[str]:
    """The compose command line prefix, or a TargetError naming what to install."""
    docker = shutil.which("docker")
    if docker is not None and _answers([docker, "compose", "version"]):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is not None and _answers([legacy, "version"]):
        return [legacy]
    raise TargetError("the docker runtime needs Docker Compose: neither `docker compose` nor "
                      "`docker-compose` works here (Debian: apt-get install -y docker-compose)")


def _answers(argv: list[str]) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=VERSION_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@dataclass
class Compose:
    """One compose project bound to one file; ``env`` holds the image variables."""

    command: list[str]
    project: str
    file: Path
    env: dict[str, str]
    log_path: Path
    options: tuple[str, ...] = ()  # global options before the command (``--compatibility``)

    def argv(self, *args: str) -> list[str]:
        return [*self.command, *self.options, "-p", self.project, "-f", str(self.file), *args]

    def run(self, what: str, args: list[str], cancel: Cancel | None, timeout: float) -> None:
        """Run one compose command to completion; cancel kills it and raises Interrupted."""
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(self.argv(*args))}\n".encode())
            log.flush()
            start = log.tell()
            try:
                proc = subprocess.Popen(self.argv(*args), env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
            except OSError as exc:
                raise TargetError(f"{what}: cannot run {self.command[0]}: {exc}") from exc
            code = _wait(proc, cancel, timeout)
        if code != 0:
            output = _read_from(self.log_path, start)
            reason = "timed out" if code is None else f"exited with {code}"
            raise TargetError(f"{what}: compose {reason}{explain(output)}")

    def output_of(self, args: list[str], timeout: float) -> str:
        """Run a quick compose command and return its stdout ('' on failure)."""
        try:
            done = subprocess.run(self.argv(*args), env=self.env, capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout if done.returncode == 0 else ""


def _wait(proc: subprocess.Popen[bytes], cancel: Cancel | None, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    try:
        while (code := proc.poll()) is None:
            if cancel is not None:
                cancel.raise_if_set()
            if time.monotonic() > deadline:
                return None
            time.sleep(POLL_S)
        return code
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")
    except OSError:
        return ""


def explain(output: str) -> str:
    """The lines of compose output that say what went wrong, as a message suffix."""
    taken = _PORT_TAKEN.search(output)
    if taken:
        return (f": port {taken.group('addr')} is already in use (another process or "
                "container publishes it); choose another entry port or stop what holds it")
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()] or lines[-8:]
    if not errors:
        return ""
    return ":\n" + "\n".join(f"    {line}" for line in list(dict.fromkeys(errors))[-8:])
