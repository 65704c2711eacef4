"""What metering costs: CPU of the sampler itself (and of dockerd answering it) for 10
containers, cgroup files vs the Engine API, measured side by side in one run.

Each meter samples at 1 Hz for a few seconds; CPU is counted for the whole harness process
(the API meter's stream readers run in background threads) and for dockerd.
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
SECONDS = 8
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
    """CPU ms per second of the harness process (sampler and any reader threads) and of
    dockerd while ``meter`` samples every container at 1 Hz, plus the wall ms of one sample."""
    meter.sample()  # warm: cgroup paths found, stats streams open
    me = psutil.Process()
    own0, engine0 = _cpu(me), _cpu(dockerd)
    started, busy = time.monotonic(), 0.0
    for tick in range(1, SECONDS + 1):
        t0 = time.perf_counter()
        assert all(s.alive for s in meter.sample())
        busy += time.perf_counter() - t0
        time.sleep(max(0.0, started + tick - time.monotonic()))
    span = time.monotonic() - started
    return ((_cpu(me) - own0) / span * 1000, (_cpu(dockerd) - engine0) / span * 1000,
            busy / SECONDS * 1000)


def _cpu(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    times = proc.cpu_times()
    return float(times.user + times.system)


def test_cgroup_meter_costs_less_than_the_engine_api(
        docker_client: docker.DockerClient, ten_containers: list[Replica]) -> None:
    replicas: Callable[[], list[Replica]] = lambda: ten_containers  # noqa: E731
    api = DockerMeter(replicas, docker_client)
    fast = CgroupMeter(replicas, docker_client, fallback=api)
    dockerd = _dockerd()
    idle = _idle(dockerd)
    fast_cost = _cost(fast, dockerd)  # first: the API meter's streams outlive its window
    api_cost = _cost(api, dockerd)
    print(f"\nidle dockerd: {idle:.1f} ms CPU/s")
    for name, (own, engine, wall) in (("cgroup files", fast_cost), ("engine API", api_cost)):
        print(f"{name:>12}, {CONTAINERS} containers at 1 Hz: harness {own:.1f} ms CPU/s, "
              f"dockerd {engine:.1f} ms CPU/s, one sample takes {wall:.2f} ms")
    assert fast_cost[0] + fast_cost[1] < api_cost[0] + api_cost[1]
    assert fast_cost[0] < 20  # < 2 % of a core for 10 containers


def _idle(dockerd: psutil.Process | None) -> float:
    before = _cpu(dockerd)
    time.sleep(2)
    return (_cpu(dockerd) - before) / 2 * 1000
