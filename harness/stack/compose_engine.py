"""The Docker Engine as the docker runtime sees it: one client, and only labelled resources.

Everything the harness creates on the engine carries ``io.cost-harness.project=<project>``;
:func:`sweep` removes exactly the containers, networks and volumes with that label and value,
so an unrelated container on the same engine is never touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
import requests
from docker.models.containers import Container

from harness.errors import TargetError

PROJECT_LABEL = "io.cost-harness.project"
SERVICE_LABEL = "io.cost-harness.service"
ROLE_LABEL = "io.cost-harness.role"
# Set by compose itself on everything it creates; a user's compose file (run as is) carries
# no label of ours, but its project name is the harness's own ``harness-<8 hex>``.
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
CLIENT_TIMEOUT_S = 30

__all__ = [
    "COMPOSE_PROJECT_LABEL",
    "COMPOSE_SERVICE_LABEL",
    "PROJECT_LABEL",
    "ROLE_LABEL",
    "SERVICE_LABEL",
    "connect",
    "engine_address",
    "project_containers",
    "sweep",
]


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect() -> docker.DockerClient:
    """A client whose engine answered a ping, or a TargetError that says how to get one."""
    try:
        client = docker.from_env(timeout=CLIENT_TIMEOUT_S)
        client.ping()
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise TargetError(
            f"the docker runtime needs a Docker Engine, and none answered at {engine_address()} "
            f"({_reason(exc)}); start dockerd (see docs/docker.md or .ci/docker-setup) or use "
            "--runtime local"
        ) from exc
    return client


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def project_containers(client: docker.DockerClient, project: str,
                       label: str = PROJECT_LABEL) -> list[Container]:
    """Every container (running or not) whose ``label`` is ``project``."""
    try:
        selector: dict[str, str | list[str] | bool] = {"label": f"{label}={project}"}
        found: list[Container] = client.containers.list(all=True, filters=selector)
    except docker.errors.DockerException as exc:
        raise TargetError(f"cannot list the containers of {project}: {_reason(exc)}") from exc
    return found


def sweep(client: docker.DockerClient, project: str) -> list[str]:
    """Force-remove the project's containers, then networks, then volumes; never raises.

    Both labels select: ours (a generated compose file) and compose's own project label (a
    user's file run as is); the project name is unique to the run either way.
    Returns one line per resource that could not be removed (empty when all is gone).
    """
    problems: list[str] = []
    for label in (PROJECT_LABEL, COMPOSE_PROJECT_LABEL):
        problems += _sweep_label(client, f"{label}={project}")
    return list(dict.fromkeys(problems))


def _sweep_label(client: docker.DockerClient, label: str) -> list[str]:
    selector: dict[str, str | list[str] | bool] = {"label": label}
    problems: list[str] = []

    def each(what: str, lister: Callable[[], list[Any]],
             remove: Callable[[Any], None]) -> None:
        try:
            items = lister()
        except (docker.errors.DockerException, requests.RequestException) as exc:
            problems.append(f"cannot list {what}s: {_reason(exc)}")
            return
        for item in items:
            try:
                remove(item)
            except docker.errors.NotFound:
                continue
            except (docker.errors.DockerException, requests.RequestException) as exc:
                problems.append(f"cannot remove {what} {item.name}: {_reason(exc)}")

    each("container", lambda: client.containers.list(all=True, filters=selector),
         lambda c: c.remove(force=True, v=True))
    each("network", lambda: client.networks.list(filters=selector), lambda n: n.remove())
    each("volume", lambda: client.volumes.list(filters=selector),
         lambda v: v.remove(force=True))
    return problems
