"""The docker runtime: the scenario's services as a compose project on the local engine.

``up`` makes sure the bootstrapped images are current (cached by content hash), writes
``RUN_DIR/compose.yml`` generated from the scenario (see :mod:`.compose_file`), then starts the
services one at a time in dependency order — ``up -d --no-deps --scale NAME=N NAME`` — and waits
for each replica from the host, as the local runtime does. ``down`` runs ``down -v`` and then
removes whatever still carries the run's project label; it never raises.

Each run is its own compose project, ``harness-<8 hex>``, recorded in ``RUN_DIR/compose.json``
until ``down`` finished, so a crashed run can still be cleaned up by its label.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import docker.errors
import requests
import yaml
from docker.models.containers import Container

from harness.errors import FaultError, Interrupted, TargetError
from harness.images import bootstrap_images
from harness.stack import compose_wait
from harness.stack.base import REVERT_GRACE_S, Cancel, Crash, NeverCancel, Replica
from harness.stack.compose_cli import Compose, find_compose
from harness.stack.compose_engine import (
    PROJECT_LABEL,
    SERVICE_LABEL,
    connect,
    project_containers,
    sweep,
)
from harness.stack.compose_file import LB_CONFIG, LB_CPU, LB_MEMORY, ComposePlan, render
from harness.stack.local import _start_order
from harness.util import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from harness.faults.proxy import ProxyProcess
    from harness.scenario import Scenario

COMPOSE_FILE = "compose.yml"
STATE_FILE = "compose.json"
UP_TIMEOUT_S = 120.0
DOWN_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 5
LB_TIMEOUT_S = 30.0
NUMBER_LABEL = "com.docker.compose.container-number"
CRASH_POLL_S = 1.0  # at most one container list call per second for crash detection
CRASH_TAIL_LINES = 5


class ComposeStack:
    """Stack protocol over docker compose. ``entry_port`` fixes the entry's host port."""

    # The labels that find this stack's containers (a user's own file carries compose's).
    project_label = PROJECT_LABEL
    service_label = SERVICE_LABEL

    def __init__(self, scenario: Scenario, run_dir: Path, entry_port: int | None = None) -> None:
        self.scenario = scenario
        self.run_dir = run_dir
        self.logs = run_dir / "logs"
        self.entry_port = entry_port
        self.project = f"harness-{secrets.token_hex(4)}"
        self.proxy: ProxyProcess | None = None  # no fault proxy in the docker runtime (yet)
        self.extra_env: dict[str, str] = {}  # given to every process service (e.g. profiling)
        self._client: docker.DockerClient | None = None
        self._compose: Compose | None = None
        self._plan: ComposePlan | None = None
        self._containers: dict[str, list[Container]] = {}
        self._replicas: list[Replica] = []
        self._meant: set[str] = set()  # replicas the harness itself killed or stopped
        self._reported: set[str] = set()
        self._next_crash_check = 0.0

    # -- Stack protocol -------------------------------------------------------------------
    def up(self, cancel: Cancel) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self._client = connect()
        command = find_compose()
        images = self._images()
        cancel.raise_if_set()
        plan = self._plan = render(self.scenario, self.project, images, self.run_dir,
                                   self.entry_port, self.extra_env)
        self._check_images(plan)
        self._compose = Compose(command, self.project, self.run_dir / COMPOSE_FILE,
                                dict(os.environ) | images, self.logs / "compose.log")
        atomic_write_json(self.run_dir / STATE_FILE, {
            "runtime": "docker", "project": self.project, "compose_file": COMPOSE_FILE,
            "command": command})
        self._write_files(plan)
        for name in [*_start_order(self.scenario), *([plan.lb_service] if plan.lb_service
                                                      else [])]:
            cancel.raise_if_set()
            self._start(name, plan, cancel)
        self._replicas = self._collect_replicas()

    def down(self) -> None:
        """``compose down -v``, then remove what still carries the label; never raises."""
        try:
            self._down()
        except Exception as exc:  # noqa: BLE001 - teardown must go on; the log says why
            self._note(f"down failed: {type(exc).__name__}: {exc}")

    def _down(self) -> None:
        problems: list[str] = []
        if self._compose is not None and self._compose.file.exists():
            try:
                self._compose.run("compose down", ["down", "-v", "--remove-orphans", "-t",
                                                   str(STOP_TIMEOUT_S)], None, DOWN_TIMEOUT_S)
            except TargetError as exc:
                problems.append(str(exc))
        problems += self._sweep()
        self._containers.clear()
        self._replicas = []
        if problems:
            self._note("\n".join(["down left problems:", *problems]))
            return
        try:
            (self.run_dir / STATE_FILE).unlink(missing_ok=True)
        except OSError as exc:
            self._note(f"cannot remove {STATE_FILE}: {exc}")

    def entry_url(self) -> str:
        plan = self._plan
        front = plan.lb_service if plan and plan.lb_service else self.scenario.target.entry
        port = self._host_port(front)
        if port is None:
            raise TargetError(f"entry service {self.scenario.target.entry!r} is not running")
        return f"http://127.0.0.1:{port}"

    def replicas(self) -> list[Replica]:
        return list(self._replicas)

    def describe(self) -> list[dict[str, object]]:
        target = self.scenario.target
        out: list[dict[str, object]] = []
        for name, containers in self._containers.items():
            svc = target.services.get(name)
            row: dict[str, object] = {
                "name": name, "kind": svc.kind if svc else "lb",
                "role": svc.role if svc else target.services[target.entry].role,
                "replicas": len(containers), "port": self._host_port(name),
                "cpu": svc.cpu if svc else LB_CPU, "memory": svc.memory if svc else LB_MEMORY,
                "billing": svc.billing if svc else "instance", "entry": name == target.entry,
                "image": containers[0].attrs.get("Config", {}).get("Image") if containers
                else None, "containers": [c.name for c in containers],
                "compose_project": self.project}
            if svc is None:
                row["balances"] = target.entry
            out.append(row)
        return out

    def crashed(self) -> list[Crash]:
        """Containers that exited on their own since the last call (not a fault, not teardown).

        Called every tick, so at most one Engine API list call (exited or dead containers of
        this project) per :data:`CRASH_POLL_S`; each new crash then costs an inspect (exit code,
        ``State.OOMKilled``) and a logs call. An engine that does not answer is asked again at
        the next check."""
        now = time.monotonic()
        if self._client is None or not self._replicas or now < self._next_crash_check:
            return []
        self._next_crash_check = now + CRASH_POLL_S
        mine = {r.container_id: r for r in self._replicas if r.container_id}
        selector = {"label": f"{self.project_label}={self.project}",
                    "status": ["exited", "dead"]}
        try:
            rows = self._client.api.containers(all=True, filters=selector)
        except (docker.errors.DockerException, requests.RequestException):
            return []
        found: list[Crash] = []
        for row in rows:
            cid = str(row.get("Id"))
            rep = mine.get(cid)
            if rep is None or rep.replica in self._meant or rep.replica in self._reported:
                continue
            self._reported.add(rep.replica)
            found.append(_crash(self._client, rep, cid))
        return found

    # -- starting ---------------------------------------------------------------------------
    def _images(self) -> dict[str, str]:
        log = self.logs / "images.log"

        def note(line: str) -> None:
            with log.open("a", encoding="utf-8") as out:
                out.write(line + "\n")

        return bootstrap_images(progress=note)

    def _check_images(self, plan: ComposePlan) -> None:
        assert self._client is not None
        for name, spec in plan.document["services"].items():
            image = spec["image"]
            try:
                self._client.images.get(image)
            except docker.errors.ImageNotFound as exc:
                raise TargetError(
                    f"service {name!r}: image {image!r} is not on this engine and no registry "
                    "can be reached; build it locally first (the harness's own images: "
                    "`harness images bootstrap`)") from exc
            except docker.errors.DockerException as exc:
                raise TargetError(f"service {name!r}: image {image!r}: {exc}") from exc

    def _write_files(self, plan: ComposePlan) -> None:
        text = yaml.safe_dump(plan.document, sort_keys=False, default_flow_style=False)
        atomic_write_text(self.run_dir / COMPOSE_FILE, text)
        if plan.lb_config is not None:
            atomic_write_text(self.run_dir / LB_CONFIG, plan.lb_config)

    def _start(self, name: str, plan: ComposePlan, cancel: Cancel) -> None:
        assert self._compose is not None
        svc = self.scenario.target.services.get(name)
        timeout = svc.startup_timeout if svc else LB_TIMEOUT_S
        self._compose.run(f"service {name!r}", ["up", "-d", "--no-deps", "--no-build",
                                                "--scale", f"{name}={plan.scale[name]}", name],
                          cancel, UP_TIMEOUT_S + timeout)
        containers = self._containers[name] = self._service_containers(name)
        if len(containers) != plan.scale[name]:
            raise TargetError(f"service {name!r}: compose started {len(containers)} of "
                              f"{plan.scale[name]} replicas")
        if svc is None:
            entry = self.scenario.target.services[self.scenario.target.entry]
            port = self._host_port(name)
            assert port is not None
            compose_wait.wait_balanced(port, entry.health or "/", entry.replicas, timeout,
                                       cancel)
            return
        self._wait_replicas(name, containers, cancel, timeout)

    def _wait_replicas(self, name: str, containers: list[Container], cancel: Cancel,
                       timeout: float) -> None:
        assert self._plan is not None
        svc = self.scenario.target.services[name]
        inside = self._plan.container_ports[name]
        for container in containers:
            ready, what = compose_wait.replica_check(name, container, svc.kind, svc.health,
                                                     inside)
            compose_wait.wait_container(name, container, ready, timeout, what, cancel)

    def _service_containers(self, name: str) -> list[Container]:
        assert self._client is not None
        mine = [c for c in project_containers(self._client, self.project, self.project_label)
                if c.labels.get(self.service_label) == name]
        return sorted(mine, key=lambda c: int(c.labels.get(NUMBER_LABEL, "0") or 0))

    def _host_port(self, name: str) -> int | None:
        containers = self._containers.get(name)
        if not containers or self._plan is None:
            return None
        return compose_wait.published_port(containers[0], self._plan.container_ports[name])

    def _collect_replicas(self) -> list[Replica]:
        assert self._plan is not None
        target = self.scenario.target
        out: list[Replica] = []
        for name, containers in self._containers.items():
            svc = target.services.get(name)
            role = svc.role if svc else target.services[target.entry].role
            for container in containers:
                out.append(Replica(
                    service=name, replica=str(container.id)[:12], role=role, pid=None,
                    port=compose_wait.published_port(container, self._plan.container_ports[name]),
                    cpu_limit=svc.cpu if svc else LB_CPU,
                    mem_limit=svc.memory if svc else LB_MEMORY, container_id=container.id))
        return out

    # -- what faults act on: only this project's containers ---------------------------------
    def kind_of(self, service: str) -> str:
        return self.scenario.target.services[service].kind

    def port_of(self, service: str) -> int:
        port = self._host_port(service)
        if port is None:
            raise FaultError(f"service {service!r} publishes no port on 127.0.0.1")
        return port

    def _container(self, service: str, replica_id: str) -> Container:
        for container in self._containers.get(service, []):
            if str(container.id).startswith(replica_id):
                return container
        raise FaultError(f"service {service!r} has no container {replica_id}")

    def alive(self, service: str) -> list[str]:
        out = []
        for container in self._containers.get(service, []):
            container.reload()
            if container.status == "running":
                out.append(str(container.id)[:12])
        return out

    def signal(self, service: str, replica_ids: list[str], sig: int) -> None:
        """SIGSTOP / SIGCONT become ``docker pause`` / ``unpause``; others ``docker kill``."""
        for rid in replica_ids:
            container = self._container(service, rid)
            if sig == signal.SIGSTOP:
                container.pause()
            elif sig == signal.SIGCONT:
                container.unpause()
            else:
                self._meant.add(rid)  # its exit is the fault's doing, not a crash
                container.kill(signal=int(sig))

    def stop_replica(self, service: str, replica_id: str) -> None:
        container = self._container(service, replica_id)
        self._meant.add(replica_id)
        container.stop(timeout=STOP_TIMEOUT_S)

    def start_replica(self, service: str, cancel: Cancel, replica_id: str | None = None) -> str:
        """Restart a stopped or killed container and wait until it is ready again.

        A revert completes even when the run is interrupted meanwhile (SIGINT during the
        wait, or the teardown's revert of an active kill fault): the container then gets up
        to :data:`REVERT_GRACE_S` more to be ready, so ``faults.jsonl`` says truthfully
        whether the replica came back."""
        if replica_id is None:
            raise FaultError("adding replicas under load (cold_start, autoscale_burst) runs on "
                             "the local runtime only in this version")
        container = self._container(service, replica_id)
        self._meant.discard(replica_id)
        self._reported.discard(replica_id)
        container.start()
        container.reload()
        timeout = self.scenario.target.services[service].startup_timeout
        try:
            self._wait_replicas(service, [container], cancel, timeout)
        except Interrupted:
            self._wait_replicas(service, [container], NeverCancel(),
                                min(timeout, REVERT_GRACE_S))
        return replica_id

    def control_file(self, service: str) -> Path:
        raise FaultError("run-time settings (log_level) reach local targets only in this version")

    def pids_of(self, service: str) -> list[int]:
        return []  # containers share the host's cores; hogs compete for all of them

    # -- stopping ---------------------------------------------------------------------------
    def _sweep(self) -> list[str]:
        try:
            client = self._client or connect()
        except TargetError as exc:
            return [str(exc)]
        return sweep(client, self.project)

    def _note(self, text: str) -> None:
        try:
            self.logs.mkdir(parents=True, exist_ok=True)
            with (self.logs / "compose.log").open("a", encoding="utf-8") as out:
                out.write(text + "\n")
        except OSError:
            pass


def _crash(client: docker.DockerClient, rep: Replica, cid: str) -> Crash:
    """What the engine says about a container that exited: code, OOM kill, last lines."""
    code: int | None = None
    oom, tail = False, ""
    try:
        state = client.api.inspect_container(cid).get("State") or {}
        code = state.get("ExitCode")
        oom = bool(state.get("OOMKilled"))
        raw = client.api.logs(cid, tail=CRASH_TAIL_LINES)
        tail = raw.decode("utf-8", "replace").rstrip() if isinstance(raw, bytes) else ""
    except (docker.errors.DockerException, requests.RequestException):
        pass  # the container is already gone: the crash is still recorded
    return Crash(service=rep.service, replica=rep.replica, exit_code=code, last_output=tail,
                 oom_killed=oom)
