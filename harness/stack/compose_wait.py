"""Start-up waits of the docker runtime, probed from the host through published ports.

A process service is ready when ``GET <health>`` answers 2xx (without a health path: when any
HTTP answer comes back; a bare TCP connect proves nothing, docker's port proxy accepts it);
Valkey/PostgreSQL when they answer PING / ``SELECT 1``. A container that exits first fails
the wait with its last log lines, as the local runtime does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import docker.errors
from docker.models.containers import Container

from harness.errors import TargetError
from harness.stack import backing, health
from harness.stack.base import Cancel

POLL_S = 0.2
LOOPBACK_OR_ANY = frozenset({"127.0.0.1", "", "0.0.0.0", "::"})
TAIL_LINES = 15


def published_port(container: Container, port: int) -> int | None:
    """The host port that publishes ``port``/tcp of ``container`` on 127.0.0.1 (or on every
    address: ``0.0.0.0`` / ``::``, as a user's compose file may; traffic still goes to
    127.0.0.1 only)."""
    bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{port}/tcp")
    for binding in bindings or []:
        if binding.get("HostIp") in LOOPBACK_OR_ANY and binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


def http_answer(port: int, path: str) -> tuple[int, str | None] | None:
    """``(status, X-Served-By)`` of ``GET path`` on 127.0.0.1:port, or None (no answer)."""
    answer = health.get(port, path)
    return None if answer is None else (answer.status, answer.served_by)


def replica_check(name: str, container: Container, kind: str, path: str | None,
                  inside: int) -> tuple[Callable[[], bool], Callable[[], str]]:
    """``(ready, what)`` for one replica: ``ready()`` probes it through its published port
    (raising TargetError on a steady 4xx, see :mod:`.health`), ``what()`` says why it is not
    ready yet."""
    watch = health.HealthWatch(path)

    def ready() -> bool:
        port = published_port(container, inside)
        if port is None:
            return False
        if kind in ("valkey", "postgres"):
            return backing.is_ready(kind, port)  # type: ignore[arg-type]
        now = time.monotonic()
        if watch.ok(health.get(port, path or "/"), now):
            return True
        steady = watch.steady_error(now)
        if steady is not None:
            raise TargetError(failure(name, container, steady))
        return False

    def what() -> str:
        if kind in ("valkey", "postgres"):
            return f"{kind} did not answer on its port {inside}"
        return watch.what(inside, inside=True)

    return ready, what


def wait_container(name: str, container: Container, ready: Callable[[], bool], timeout: float,
                   what: Callable[[], str], cancel: Cancel) -> None:
    """Poll until ``ready()``; fail when the container stops or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        cancel.raise_if_set()
        state = _state(container)
        if state.get("Status") in ("exited", "dead"):
            code = state.get("ExitCode")
            raise TargetError(failure(name, container, f"exited with code {code} during "
                                                       "start-up"))
        if ready():
            return
        if time.monotonic() > deadline:
            why = f"{what()}; `startup_timeout` sets how long to wait"
            raise TargetError(failure(name, container, f"was not healthy after {timeout:g} s "
                                                       f"({why})"))
        time.sleep(POLL_S)


def _state(container: Container) -> dict[str, object]:
    try:
        container.reload()
    except docker.errors.NotFound:
        return {"Status": "dead", "ExitCode": "unknown (the container is gone)"}
    except docker.errors.DockerException:
        return {}
    state: dict[str, object] = container.attrs.get("State", {})
    return state


def failure(name: str, container: Container, what: str) -> str:
    return (f"service {name!r} ({container.name}) {what}; last output lines:\n"
            f"{_tail(container)}")


def _tail(container: Container) -> str:
    try:
        raw: bytes = container.logs(tail=TAIL_LINES)
    except docker.errors.DockerException:
        raw = b""
    lines = raw.decode("utf-8", "replace").rstrip().splitlines()
    return "\n".join(f"    {line}" for line in lines) if lines else "    (no output)"


def wait_balanced(port: int, path: str, replicas: int, timeout: float, cancel: Cancel) -> None:
    """Wait until the load balancer answers 2xx and, when targets name themselves in
    ``X-Served-By``, has sent requests to every replica (so load spreads from the start)."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while True:
        cancel.raise_if_set()
        answer = http_answer(port, path)
        if answer is not None and 200 <= answer[0] < 300:
            if answer[1] is None or len(seen | {answer[1]}) >= replicas:
                return
            seen.add(answer[1])
        if time.monotonic() > deadline:
            names = ", ".join(sorted(seen)) or "none"
            raise TargetError(
                f"the load balancer on 127.0.0.1:{port} did not reach all {replicas} replicas "
                f"after {timeout:g} s (GET {path}; answered by: {names})")
        time.sleep(POLL_S / 2)
