"""The black-box attribution check on the docker runtime: the uninstrumented target in a
container, CPU metered from its cgroup, priced per endpoint within 10 % of its own count."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from tests.blackbox_case import check_against_truth, scenario, widths_first_half_vs_all
from tests.conftest import run_cli

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_uninstrumented_container_priced_per_endpoint_by_regression(
        images: dict[str, str], docker_client: docker.DockerClient,
        scenario_file: Callable[[str], Path], run_dir: Path) -> None:
    before = {c.id for c in docker_client.containers.list(all=True)}
    text = scenario("docker", 60, mix="designed")
    done = run_cli("run", scenario_file(text), "--output", run_dir, timeout=400)
    assert done.returncode == 0, done.stderr
    check_against_truth(run_dir)
    half, full = widths_first_half_vs_all(run_dir)
    assert full < half, (half, full)
    assert {c.id for c in docker_client.containers.list(all=True)} == before
