"""Start-up waits of the docker runtime, probed from the host through published ports.

A process service is ready when ``GET <health>`` answers 2xx (without a health path: when any
HTTP answer comes back; a bare TCP connect proves nothing, docker's port proxy accepts it);
Valkey/PostgreSQL when they answer PING / ``SELECT 1``. A container that exits first fails
the wait with its last log lines, as the local runtime does.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable

import docker.errors
from docker.models.containers import Container

from harness.errors import TargetError
from harness.stack import backing
from harness.stack.base import Cancel

POLL_S = 0.2
TAIL_LINES = 15


def published_port(container: Container, port: int) -> int | None:
    """The 127.0.0.1 host port that publishes ``port``/tcp of ``container``."""
    bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{port}/tcp")
    for binding in bindings or []:
        if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


def http_answer(port: int, path: str) -> tuple[int, str | None] | None:
    """``(status, X-Served-By)`` of ``GET path`` on 127.0.0.1:port, or None (no answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Served-By")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def probe(kind: str, health: str | None) -> Callable[[int], bool]:
    """The readiness check of one replica, given its host port."""
    if kind in ("valkey", "postgres"):
        return lambda port: backing.is_ready(kind, port)  # type: ignore[arg-type]

    def ready(port: int) -> bool:
        answer = http_answer(port, health or "/")
        return answer is not None and (health is None or 200 <= answer[0] < 300)

    return ready


def wait_container(name: str, container: Container, ready: Callable[[], bool], timeout: float,
                   what: str, cancel: Cancel) -> None:
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
            raise TargetError(failure(name, container, f"was not healthy after {timeout:g} s "
                                                       f"({what})"))
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
