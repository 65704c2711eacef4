"""Both docker meters across a container restart (what a kill fault's revert does): the
restarted container is metered again, its CPU carried on from the total it had."""

from __future__ import annotations

import time
from collections.abc import Iterator

import docker
import pytest
from docker.models.containers import Container

from harness.meter.base import Meter, UsageSample
from harness.meter.cgroup import CgroupMeter, cgroups_readable
from harness.meter.docker import DockerMeter
from harness.stack.base import Replica
from harness.stack.compose_engine import PROJECT_LABEL, sweep

pytestmark = pytest.mark.docker

PROJECT = "harness-meter-restart"
BURN = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\n" \
       "time.sleep(300)\n"


@pytest.fixture
def burner(docker_client: docker.DockerClient, images: dict[str, str]) -> Iterator[Container]:
    container = docker_client.containers.run(
        images["PYTHON_BASE_IMAGE"], ["python3", "-c", BURN], detach=True,
        labels={PROJECT_LABEL: PROJECT}, name=f"{PROJECT}-0")
    try:
        yield container
    finally:
        assert sweep(docker_client, PROJECT) == []


def _cpu(meter: Meter) -> UsageSample:
    [sample] = meter.sample()
    return sample


def test_both_meters_carry_a_restarted_container_on(
        burner: Container, docker_client: docker.DockerClient) -> None:
    assert cgroups_readable(), "the engine runs here: cgroup files must be readable"
    rep = Replica("burner", str(burner.id)[:12], "app", None, None, None, None, burner.id)
    api = DockerMeter(lambda: [rep], docker_client)
    fast = CgroupMeter(lambda: [rep], docker_client, fallback=DockerMeter(lambda: [rep]))
    _cpu(api)  # opens the stats stream
    time.sleep(3.0)  # burnt its 0.5 s; idle, so the engine's latest document is current
    before = {"api": _cpu(api), "cgroup": _cpu(fast)}
    burner.kill()
    time.sleep(1.2)
    dead = {"api": _cpu(api), "cgroup": _cpu(fast)}
    burner.start()
    time.sleep(3.5)  # the new process burns its 0.5 s, then idles
    _cpu(api)  # the stream of the new run opens
    time.sleep(1.5)
    after = {"api": _cpu(api), "cgroup": _cpu(fast)}
    for name in ("api", "cgroup"):
        assert before[name].alive and not dead[name].alive and after[name].alive, name
        assert before[name].cpu_s >= 0.45, (name, before[name].cpu_s)
        assert dead[name].cpu_s == before[name].cpu_s, name
        gained = after[name].cpu_s - before[name].cpu_s
        assert 0.45 <= gained <= 1.5, (name, before[name].cpu_s, after[name].cpu_s)
    assert abs(after["api"].cpu_s - after["cgroup"].cpu_s) < 0.05  # the same counters
