"""The generated compose file: labels, 127.0.0.1-only ports, limits, in-network templating,
the load balancer. Pure: no engine needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.errors import TargetError
from harness.stack.compose_engine import PROJECT_LABEL
from harness.stack.compose_file import haproxy_config, render
from tests.docker.conftest import scenario_from

pytestmark = pytest.mark.docker

IMAGES = {"PYTHON_BASE_IMAGE": "py:test", "REDIS_IMAGE": "redis:test",
          "POSTGRES_IMAGE": "pg:test", "LB_IMAGE": "lb:test"}
SYSTEM = """
name: system
target:
  runtime: docker
  services:
    shop:
      command: "{python} -m targets.shop --port {port}"
      replicas: 3
      cpu: 0.5
      memory: 256Mi
      env:
        SHOP_CACHE_URL: "{services.cache.url}"
        SHOP_DB_URL: "{services.db.url}"
        PRICE: "cost$5"
      depends_on: [cache, db]
    cache: {kind: valkey, memory: 64Mi}
    db: {kind: postgres, cpu: 1}
"""


def plan_of(text: str, tmp_path: Path, entry_port: int | None = None):  # type: ignore[no-untyped-def]
    scenario = scenario_from(text, tmp_path / "s.yaml")
    return render(scenario, "harness-test", IMAGES, tmp_path, entry_port)


def test_every_resource_is_labelled_and_published_on_loopback_only(tmp_path: Path) -> None:
    plan = plan_of(SYSTEM, tmp_path)
    doc = plan.document
    assert set(doc["services"]) == {"shop", "cache", "db", "shop-lb"}
    for name, spec in doc["services"].items():
        assert spec["labels"][PROJECT_LABEL] == "harness-test", name
        assert all(port.startswith("127.0.0.1:") for port in spec["ports"]), name
    assert doc["networks"]["default"]["labels"][PROJECT_LABEL] == "harness-test"
    assert doc["volumes"]["db-data"]["labels"][PROJECT_LABEL] == "harness-test"
    yaml.safe_load(yaml.safe_dump(doc))  # serialisable as written to RUN_DIR/compose.yml


def test_templating_uses_in_network_addresses_and_escapes_dollars(tmp_path: Path) -> None:
    shop = plan_of(SYSTEM, tmp_path).document["services"]["shop"]
    assert shop["command"] == ["python", "-m", "targets.shop", "--port", "8000"]
    env = shop["environment"]
    assert env["SHOP_CACHE_URL"] == "redis://cache:6379/0"
    assert env["SHOP_DB_URL"] == "postgresql://postgres@db:5432/postgres"
    assert env["PRICE"] == "cost$$5"  # compose reads "$$" as a literal "$"
    assert env["PORT"] == "8000" and env["HARNESS_BIND_HOST"] == "0.0.0.0"


def test_limits_images_scale_and_load_balancer(tmp_path: Path) -> None:
    plan = plan_of(SYSTEM, tmp_path, entry_port=18080)
    services = plan.document["services"]
    assert services["shop"]["cpus"] == 0.5
    assert services["shop"]["mem_limit"] == services["shop"]["memswap_limit"] == 256 * 2**20
    assert services["shop"]["image"] == "py:test"
    assert services["cache"]["image"] == "redis:test" and "cpus" not in services["cache"]
    assert services["db"]["image"] == "pg:test" and services["db"]["stop_signal"] == "SIGINT"
    assert plan.scale == {"shop": 3, "cache": 1, "db": 1, "shop-lb": 1}
    assert plan.lb_service == "shop-lb"
    assert services["shop-lb"]["ports"] == ["127.0.0.1:18080:8000"]
    assert services["shop"]["ports"] == ["127.0.0.1::8000"]  # replicas: random host ports
    assert "server-template replica 3 shop:8000" in (plan.lb_config or "")


def test_single_replica_entry_is_published_directly(tmp_path: Path) -> None:
    text = """
    name: one
    target:
      services:
        api: {command: "{python} -m targets.sample"}
    """
    plan = plan_of(text, tmp_path, entry_port=18081)
    assert plan.lb_service is None and plan.lb_config is None
    assert plan.document["services"]["api"]["ports"] == ["127.0.0.1:18081:8000"]


def test_unknown_placeholder_and_reserved_name_are_target_errors(tmp_path: Path) -> None:
    text = """
    name: bad
    target:
      services:
        api: {command: "{python} -m x --peer {services.nope.url}"}
    """
    with pytest.raises(TargetError, match=r"service api: command: \{services.nope.url\}"):
        plan_of(text, tmp_path)
    clash = """
    name: clash
    target:
      entry: api
      services:
        api: {command: "{python} -m x", replicas: 2}
        api-lb: {command: "{python} -m y"}
    """
    with pytest.raises(TargetError, match="reserved for the entry's load balancer"):
        plan_of(clash, tmp_path)


def test_haproxy_config_balances_over_every_replica() -> None:
    text = haproxy_config("api", 8000, 4)
    assert "balance roundrobin" in text
    assert "server-template replica 4 api:8000" in text
    assert "nameserver dns 127.0.0.11:53" in text
