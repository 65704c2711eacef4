"""The docker runtime on the user's own compose file (``target.compose``), run as is.

Nothing in the file is rewritten and no override file is added: the harness runs
``compose -p harness-<8 hex> -f THEIR_FILE up -d`` (compose v1 also gets ``--compatibility``,
so ``deploy.resources.limits`` are enforced there as v2 enforces them), so every container,
network and volume carries compose's own ``com.docker.compose.project=harness-<8 hex>``
label. That label is what this stack lists, what faults act on, what teardown
(``down -v --remove-orphans``, then a sweep by that label) and ``harness cleanup`` remove —
the project name is unique to the run, so nothing else on the engine is touched.

Start-up: every container must be running (and ``healthy`` when the file gives it a
healthcheck; a one-shot container that exits 0 is fine); the entry must also answer HTTP on
the host port that publishes its first container port (``GET <health>`` with 2xx when the
scenario names a health path). Each service's ``startup_timeout`` bounds its wait.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from docker.models.containers import Container

from harness.errors import TargetError
from harness.scenario.compose import ComposeFileError, read_compose_file
from harness.stack import compose_wait
from harness.stack.base import Cancel
from harness.stack.compose import STATE_FILE, UP_TIMEOUT_S, ComposeStack
from harness.stack.compose_cli import Compose, find_compose
from harness.stack.compose_engine import (
    COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
    connect,
    project_containers,
)
from harness.stack.compose_file import ComposePlan
from harness.util import atomic_write_json

BUILD_TIMEOUT_S = 600.0  # `up` builds images the file builds and the engine lacks
NUMBER_LABEL = "com.docker.compose.container-number"

__all__ = ["ComposeFileStack"]


class ComposeFileStack(ComposeStack):
    """:class:`ComposeStack` over the user's compose file (see the module docstring)."""

    project_label = COMPOSE_PROJECT_LABEL
    service_label = COMPOSE_SERVICE_LABEL

    def up(self, cancel: Cancel) -> None:
        target = self.scenario.target
        assert target.compose is not None  # run.py picks this stack only then
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            found = read_compose_file(target.compose)
        except ComposeFileError as exc:  # changed since the scenario was loaded
            raise TargetError(str(exc)) from exc
        self._client = connect()
        command = find_compose()
        cancel.raise_if_set()
        ports = {name: (svc.ports[0] if svc.ports else 0)
                 for name, svc in found.services.items()}
        self._plan = ComposePlan(document={}, scale={}, container_ports=ports, lb_service=None,
                                 lb_config=None)
        options = ("--compatibility",) if len(command) == 1 else ()  # v1: docker-compose
        self._compose = Compose(command, self.project, target.compose, dict(os.environ),
                                self.logs / "compose.log", options)
        atomic_write_json(self.run_dir / STATE_FILE, {
            "runtime": "docker", "project": self.project, "compose_file": str(target.compose),
            "command": command, "as_is": True})
        self._compose.run("compose up", ["up", "-d"], cancel, BUILD_TIMEOUT_S + UP_TIMEOUT_S)
        self._containers = self._project_containers()
        if target.entry not in self._containers:
            raise TargetError(f"entry service {target.entry!r}: compose started no container "
                              f"for it (is it behind a compose profile?)")
        for name, containers in self._containers.items():
            cancel.raise_if_set()
            timeout = target.services[name].startup_timeout
            self._wait_replicas(name, containers, cancel, timeout)
        self._replicas = self._collect_replicas()

    def _project_containers(self) -> dict[str, list[Container]]:
        """This project's containers by compose service, in the file's order."""
        assert self._client is not None
        groups: dict[str, list[Container]] = {}
        for container in project_containers(self._client, self.project, self.project_label):
            groups.setdefault(container.labels.get(self.service_label, "?"), []).append(container)
        return {name: sorted(groups[name], key=_number)
                for name in self.scenario.target.services if name in groups}

    def _wait_replicas(self, name: str, containers: list[Container], cancel: Cancel,
                       timeout: float) -> None:
        assert self._plan is not None
        svc = self.scenario.target.services[name]
        inside = self._plan.container_ports.get(name, 0)
        probe = name == self.scenario.target.entry or (svc.health is not None and inside > 0)
        for container in containers:
            if name != self.scenario.target.entry and _finished(container):
                self._meant.add(str(container.id)[:12])  # a one-shot job: done, not crashed
                continue
            ready, what = _running_check(container)
            if probe:
                ready, what = _both(ready, what, *compose_wait.replica_check(
                    name, container, "process", svc.health, inside))
            compose_wait.wait_container(name, container, ready, timeout, what, cancel)

    def kind_of(self, service: str) -> str:
        """Any container can be restarted; a service with role cache takes cache faults."""
        svc = self.scenario.target.services[service]
        if svc.kind != "compose":
            return svc.kind
        return "valkey" if svc.role == "cache" else "process"


def _number(container: Container) -> int:
    return int(container.labels.get(NUMBER_LABEL, "0") or 0)


def _finished(container: Container) -> bool:
    container.reload()
    state = container.attrs.get("State", {})
    return bool(state.get("Status") == "exited" and state.get("ExitCode") == 0)


def _running_check(container: Container) -> tuple[Callable[[], bool], Callable[[], str]]:
    """Ready when running, and ``healthy`` if the compose file gives it a healthcheck
    (``wait_container`` reloads the container's state before each call)."""

    def health() -> str | None:
        found = (container.attrs.get("State", {}).get("Health") or {}).get("Status")
        return str(found) if found else None

    def ready() -> bool:
        running = bool(container.attrs.get("State", {}).get("Status") == "running")
        return running and health() in (None, "healthy")

    def what() -> str:
        status = health()
        if status is not None:
            return f"its compose healthcheck says {status}"
        return f"it is {container.attrs.get('State', {}).get('Status', 'not running')}"

    return ready, what


def _both(ready_a: Callable[[], bool], what_a: Callable[[], str], ready_b: Callable[[], bool],
          what_b: Callable[[], str]) -> tuple[Callable[[], bool], Callable[[], str]]:
    """Ready when both are; ``what`` names the first one that is not."""
    state = {"first": False}

    def ready() -> bool:
        state["first"] = ready_a()
        return state["first"] and ready_b()

    def what() -> str:
        return what_b() if state["first"] else what_a()

    return ready, what
