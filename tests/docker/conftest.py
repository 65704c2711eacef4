"""Fixtures for the docker runtime's tests (marker ``docker``).

Without a Docker Engine (or compose, or the images) these tests are skipped — unless
``HARNESS_REQUIRE_DOCKER=1`` (CI sets it), where a missing engine is a failure.

* ``docker_client`` — a client whose engine answered, session-scoped.
* ``images`` — ``bootstrap_images()`` once per session (cached by content hash).
* ``make_stack(text)`` — a :class:`ComposeStack` for a scenario; ``down()`` always runs after
  the test, and the test fails if anything labelled with its project is left.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from harness.errors import HarnessError
from harness.images import bootstrap_images
from harness.scenario import Scenario, parse_scenario
from harness.stack.compose import ComposeStack
from harness.stack.compose_cli import find_compose
from harness.stack.compose_engine import PROJECT_LABEL, connect


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "docker: needs a Docker Engine; HARNESS_REQUIRE_DOCKER=1 makes its absence "
        "a failure instead of a skip")


def unavailable(reason: str) -> None:
    if os.environ.get("HARNESS_REQUIRE_DOCKER") == "1":
        pytest.fail(f"HARNESS_REQUIRE_DOCKER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = connect()
        find_compose()
    except HarnessError as exc:
        unavailable(str(exc))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def images(docker_client: docker.DockerClient) -> dict[str, str]:
    try:
        return bootstrap_images()
    except HarnessError as exc:
        unavailable(f"the images could not be built: {exc}")
        raise


def scenario_from(text: str, source: Path) -> Scenario:
    """A scenario from YAML text; a ``GET /health`` request is added when none is given."""
    text = textwrap.dedent(text)
    if "requests:" not in text:
        text += "requests:\n  - {name: health, path: /health}\n"
    return parse_scenario(text, source)


def labelled(client: docker.DockerClient, project: str) -> list[str]:
    """Containers, networks and volumes that still carry ``project``'s label."""
    selector: dict[str, str | list[str] | bool] = {"label": f"{PROJECT_LABEL}={project}"}
    return ([f"container {c.name}" for c in client.containers.list(all=True, filters=selector)]
            + [f"network {n.name}" for n in client.networks.list(filters=selector)]
            + [f"volume {v.name}" for v in client.volumes.list(filters=selector)])


StackFactory = Callable[..., ComposeStack]


@pytest.fixture
def make_stack(images: dict[str, str], docker_client: docker.DockerClient,
               tmp_path: Path) -> Iterator[StackFactory]:
    stacks: list[ComposeStack] = []

    def make(text: str, entry_port: int | None = None) -> ComposeStack:
        run_dir = tmp_path / f"run-{len(stacks)}"
        run_dir.mkdir()
        stack = ComposeStack(scenario_from(text, run_dir / "scenario.yaml"), run_dir,
                             entry_port=entry_port)
        stacks.append(stack)
        return stack

    try:
        yield make
    finally:
        left: list[str] = []
        for stack in stacks:
            stack.down()
            left += labelled(docker_client, stack.project)
        assert not left, f"left behind: {left}"
