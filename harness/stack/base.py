"""The `Stack` protocol: what a runtime (local processes, docker compose) gives a run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypedDict


@dataclass(frozen=True, slots=True)
class Replica:
    """One running copy of a service, as the meters and faults see it."""

    service: str
    replica: str  # replica id, also sent by instrumented targets as X-Served-By
    role: str
    pid: int | None  # local runtime: the process (group leader); docker: None
    port: int | None
    cpu_limit: float | None  # provisioned vCPU
    mem_limit: int | None  # provisioned bytes
    container_id: str | None = None


class Cancel(Protocol):
    """Lets long waits (health checks) stop early when the run is interrupted."""

    def raise_if_set(self) -> None: ...


# After an interrupt, a replica a fault is restarting gets this long to become ready, so the
# revert's outcome is known (and logged) rather than abandoned half-way.
REVERT_GRACE_S = 15.0


class NeverCancel:
    """A Cancel that never cancels: the last, bounded wait of a revert after an interrupt."""

    def raise_if_set(self) -> None:
        return None


class Stack(Protocol):
    """A set of running services. ``up`` may raise TargetError; ``down`` never raises."""

    def up(self, cancel: Cancel) -> None: ...

    def down(self) -> None: ...

    def entry_url(self) -> str: ...

    def replicas(self) -> list[Replica]: ...

    def describe(self) -> list[dict[str, object]]: ...


class Crash(TypedDict):
    """A replica that exited on its own (neither a fault the harness injected nor teardown)."""

    service: str
    replica: str
    exit_code: int | None  # None when the runtime could not tell
    last_output: str  # the last lines the replica wrote
    oom_killed: bool  # killed by the kernel's OOM killer (docker: ``State.OOMKilled``)


class CrashWatch(Protocol):
    """Reports each crashed replica once; called every tick of the run, so it must be cheap."""

    def crashed(self) -> list[Crash]: ...
