"""What metering costs: CPU of the sampler itself (and of dockerd answering it) for 10
containers, cgroup files vs the Engine API, measured side by side in one run.

Samples are taken back to back; CPU per sample equals CPU per second at the 1 Hz the run uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import docker
import psutil
import pytest
from docker.models.containers import Container

from harness.meter.base import Meter
from harness.meter.cgroup import CgroupMeter
from harness.meter.docker import DockerMeter
from harness.stack.base import Replica
from harness.stack.compose_engine import PROJECT_LABEL, sweep

pytestmark = pytest.mark.docker

CONTAINERS = 10
SAMPLES = 20
PROJECT = "harness-meter-overhead"


@pytest.fixture
def ten_containers(docker_client: docker.DockerClient,
                   images: dict[str, str]) -> Iterator[list[Replica]]:
    started: list[Container] = []
    try:
        for index in range(CONTAINERS):
            started.append(docker_client.containers.run(
                images["DEBIAN_BASE_IMAGE"], ["sleep", "300"], detach=True,
                labels={PROJECT_LABEL: PROJECT}, name=f"{PROJECT}-{index}"))
        yield [Replica("idle", str(c.id)[:12], "app", None, None, None, None, c.id)
               for c in started]
    finally:
        assert sweep(docker_client, PROJECT) == []


def _dockerd() -> psutil.Process | None:
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "dockerd":
            return proc
    return None


def _cost(meter: Meter, dockerd: psutil.Process | None) -> tuple[float, float, float]:
    """(harness CPU ms, dockerd CPU ms, wall ms) per sample of all containers."""
    meter.sample()  # warm: cgroup paths found, HTTP connection open
    me = psutil.Process()
    cpu0, d0, t0 = me.cpu_times(), dockerd.cpu_times() if dockerd else None, time.perf_counter()
    for _ in range(SAMPLES):
        assert all(s.alive for s in meter.sample())
    cpu1, d1, wall = me.cpu_times(), dockerd.cpu_times() if dockerd else None, (
        time.perf_counter() - t0)
    own = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / SAMPLES * 1000
    engine = ((d1.user + d1.system - d0.user - d0.system) / SAMPLES * 1000
              if d0 and d1 else float("nan"))
    return own, engine, wall / SAMPLES * 1000


def test_cgroup_meter_costs_less_than_the_engine_api(
        docker_client: docker.DockerClient, ten_containers: list[Replica]) -> None:
    replicas: Callable[[], list[Replica]] = lambda: ten_containers  # noqa: E731
    api = DockerMeter(replicas, docker_client)
    fast = CgroupMeter(replicas, docker_client, fallback=api)
    dockerd = _dockerd()
    api_cost, fast_cost = _cost(api, dockerd), _cost(fast, dockerd)
    for name, (own, engine, wall) in (("engine API", api_cost), ("cgroup files", fast_cost)):
        print(f"\n{name:>12}: {CONTAINERS} containers per sample: harness CPU {own:.2f} ms, "
              f"dockerd CPU {engine:.2f} ms, wall {wall:.2f} ms "
              f"(at 1 Hz: {(own + (0 if engine != engine else engine)) / 10:.3f} % of a core)")
    assert fast_cost[0] + (fast_cost[1] if fast_cost[1] == fast_cost[1] else 0) < api_cost[0]
    assert fast_cost[2] < api_cost[2]
