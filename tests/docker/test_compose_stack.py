"""The docker runtime end to end on a real engine: up, health, load balancing, metering, down.

Each test's stack is torn down by the ``make_stack`` fixture, which fails the test when any
container, network or volume with its project label is left.
"""

from __future__ import annotations

import time

import docker
import pytest
import requests

from harness.meter.cgroup import CgroupMeter, make_docker_meter
from harness.meter.docker import DockerMeter
from harness.stack.compose import STATE_FILE
from harness.stack.compose_engine import PROJECT_LABEL
from tests.docker.conftest import StackFactory, labelled

pytestmark = pytest.mark.docker


class NoCancel:
    def raise_if_set(self) -> None:
        return None


SAMPLE_2 = """
name: sample-docker
target:
  runtime: docker
  services:
    api:
      command: "{python} -m targets.sample"
      replicas: 2
      cpu: 0.5
      memory: 256Mi
"""


def test_sample_with_two_replicas_up_metered_and_down(
        make_stack: StackFactory, docker_client: docker.DockerClient) -> None:
    stack = make_stack(SAMPLE_2)
    started = time.monotonic()
    stack.up(NoCancel())
    print(f"\ncompose up (2 replicas + load balancer): {time.monotonic() - started:.1f} s")
    url = stack.entry_url()
    assert url.startswith("http://127.0.0.1:")
    reps = stack.replicas()
    apps = [r for r in reps if r.service == "api"]
    assert len(apps) == 2 and [r.service for r in reps].count("api-lb") == 1
    assert all(r.container_id and r.port and r.pid is None for r in reps)
    assert {r.cpu_limit for r in apps} == {0.5} and {r.mem_limit for r in apps} == {256 * 2**20}
    for rep in reps:  # the engine enforces the provisioned size
        host = docker_client.containers.get(rep.container_id).attrs["HostConfig"]
        assert host["NanoCpus"] == int((rep.cpu_limit or 0) * 1e9)
        assert host["Memory"] == rep.mem_limit
        assert all(b["HostIp"] == "127.0.0.1" for ports in host["PortBindings"].values()
                   for b in ports)
    served = {requests.get(f"{url}/cpu?ms=30", timeout=10).headers["X-Served-By"]
              for _ in range(12)}
    assert served == {r.replica for r in apps}  # X-Served-By names the replicas we report
    samples = {s.replica: s for s in make_docker_meter(stack.replicas).sample()}
    for rep in apps:
        got = samples[rep.replica]
        assert got.alive and got.cpu_s > 0.1  # 6 x 30 ms of CPU each, plus start-up
        assert 2**20 < got.rss_bytes < 256 * 2**20  # cgroup memory: anon + active file pages
        assert got.net_rx_bytes and got.net_tx_bytes
        assert got.mem_limit_bytes == 256 * 2**20 and got.cpu_limit == 0.5
    project = stack.project
    assert (stack.run_dir / STATE_FILE).exists()
    stack.down()
    assert labelled(docker_client, project) == []
    assert not (stack.run_dir / STATE_FILE).exists()
    after = {s.replica: s for s in make_docker_meter(lambda: reps).sample()}
    assert not any(s.alive for s in after.values())


def test_cgroup_and_api_meters_agree(make_stack: StackFactory,
                                     docker_client: docker.DockerClient) -> None:
    stack = make_stack(SAMPLE_2.replace("replicas: 2", "replicas: 1"))
    stack.up(NoCancel())
    api = DockerMeter(stack.replicas, docker_client)
    fast = make_docker_meter(stack.replicas)
    assert isinstance(fast, CgroupMeter), "the engine runs here: cgroup files must be readable"
    api.sample()  # opens the stats stream
    for _ in range(5):
        requests.get(f"{stack.entry_url()}/cpu?ms=40", timeout=10)
    time.sleep(2.5)  # idle, so the engine's latest document (<= 1 s old) is current
    a, b = api.sample()[0], fast.sample()[0]
    assert b.cpu_s > 0.2  # 5 x 40 ms of CPU, plus start-up
    assert abs(a.cpu_s - b.cpu_s) < 0.05  # the same cgroup counter
    assert a.net_rx_bytes and b.net_rx_bytes and a.net_tx_bytes and b.net_tx_bytes
    assert b.net_rx_bytes > 1000 and abs(a.net_rx_bytes - b.net_rx_bytes) < 1024  # + ARP noise
    assert b.net_tx_bytes > 1000 and abs(a.net_tx_bytes - b.net_tx_bytes) < 1024
    assert abs(b.rss_bytes - a.rss_bytes) < 8 * 2**20


def test_down_leaves_an_unrelated_container_alone(
        make_stack: StackFactory, docker_client: docker.DockerClient,
        images: dict[str, str]) -> None:
    other = docker_client.containers.run(
        images["DEBIAN_BASE_IMAGE"], ["sleep", "300"], detach=True,
        labels={"test": "unrelated", PROJECT_LABEL: "someone-else"})
    try:
        stack = make_stack(SAMPLE_2.replace("replicas: 2", "replicas: 1"))
        stack.up(NoCancel())
        stack.down()
        other.reload()
        assert other.status == "running"
    finally:
        other.remove(force=True)


def test_backing_services_use_in_network_addresses(make_stack: StackFactory) -> None:
    stack = make_stack("""
    name: shop-docker
    target:
      runtime: docker
      services:
        shop:
          command: "{python} -m targets.shop"
          replicas: 2
          env:
            SHOP_DB_URL: "{services.db.url}"
            SHOP_CACHE: "on"
            SHOP_CACHE_URL: "{services.cache.url}"
            SHOP_PAYMENTS_URL: "{services.payments.url}"
            SHOP_PRODUCTS: "300"
          depends_on: [db, cache, payments]
        payments:
          command: "{python} -m targets.payments"
          env: {PAYMENTS_LATENCY_MS: "1"}
        cache: {kind: valkey}
        db: {kind: postgres}
    """)
    stack.up(NoCancel())
    url = stack.entry_url()
    for _ in range(2):
        assert requests.get(f"{url}/products/7", timeout=10).status_code == 200
    order = requests.post(f"{url}/checkout", json={"product_id": 7, "qty": 1}, timeout=10)
    assert order.status_code == 201, order.text
    timing = requests.get(f"{url}/products/7", timeout=10).headers.get("Server-Timing", "")
    assert "cache" in timing
    services = {row["name"]: row for row in stack.describe()}
    assert services["shop"]["replicas"] == 2 and services["shop-lb"]["balances"] == "shop"
    assert {r.role for r in stack.replicas() if r.service in ("cache", "db")} == {
        "cache", "database"}


def test_compose_file_is_kept_in_the_run_dir(make_stack: StackFactory) -> None:
    stack = make_stack(SAMPLE_2.replace("replicas: 2", "replicas: 1"))
    stack.up(NoCancel())
    text = (stack.run_dir / "compose.yml").read_text()
    assert stack.project in text and "127.0.0.1::8000" in text
    assert (stack.run_dir / "logs" / "compose.log").stat().st_size > 0
