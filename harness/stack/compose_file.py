"""The compose file the docker runtime generates from a scenario (compose file format 2.4,
read alike by ``docker-compose`` v1 and ``docker compose`` v2).

* ``kind: process`` → the bootstrapped Python image (or the service's ``image``) running
  ``command``, listening on :data:`APP_PORT` inside its container; ``kind: valkey | postgres``
  → the bootstrapped Redis / PostgreSQL images with test-grade settings.
* Placeholders resolve to in-network addresses: ``{services.cache.url}`` is
  ``redis://cache:6379/0``, ``{port}`` the container port, ``{python}`` ``python``,
  ``{run_dir}`` :data:`RUN_DIR_MOUNT` (the run directory, mounted). ``{replica}`` is not
  available: scaled replicas share one environment and read ``HARNESS_REPLICA`` instead.
* Every container, the network and every volume carry the project label; every port is
  published on 127.0.0.1 only (a random host port unless ``entry_port`` fixes the entry's).
* An entry service with several replicas gets a haproxy container ``<entry>-lb`` in front.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import TargetError
from harness.stack.compose_engine import PROJECT_LABEL, ROLE_LABEL, SERVICE_LABEL
from harness.stack.templating import fill

if TYPE_CHECKING:
    from collections.abc import Mapping

    from harness.scenario import Scenario, Service

APP_PORT = 8000
BACKING_PORTS = {"valkey": 6379, "postgres": 5432}
RUN_DIR_MOUNT = "/harness-run"
LB_CONFIG = "haproxy.cfg"
LB_CPU = 0.5
LB_MEMORY = 128 * 2**20
STOP_GRACE = "5s"
IMAGE_VARS = {"process": "PYTHON_BASE_IMAGE", "valkey": "REDIS_IMAGE",
              "postgres": "POSTGRES_IMAGE", "lb": "LB_IMAGE"}
_REDIS_ARGS = ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "",
               "--appendonly", "no"]
_POSTGRES_ARGS = ["postgres", "-c", "fsync=off", "-c", "full_page_writes=off",
                  "-c", "synchronous_commit=off"]


@dataclass(frozen=True)
class ComposePlan:
    """What ``up`` needs: the file's content, the scale of each service, the LB's config."""

    document: dict[str, Any]
    scale: dict[str, int]
    container_ports: dict[str, int]
    lb_service: str | None
    lb_config: str | None


def container_port(svc: Service) -> int:
    return BACKING_PORTS.get(svc.kind, APP_PORT)


def lb_name(scenario: Scenario) -> str | None:
    """``<entry>-lb`` when the entry service is scaled, else None."""
    entry = scenario.target.entry
    return f"{entry}-lb" if scenario.target.services[entry].replicas > 1 else None


def render(scenario: Scenario, project: str, images: Mapping[str, str], run_dir: Path,
           entry_port: int | None = None,
           extra_env: Mapping[str, str] | None = None) -> ComposePlan:
    """The compose document for ``scenario``; raises TargetError for a bad placeholder.

    ``extra_env`` is given to every process service (after its own ``env``)."""
    target = scenario.target
    ports = {name: container_port(svc) for name, svc in target.services.items()}
    values = _values(scenario, ports)
    lb = lb_name(scenario)
    if lb is not None and lb in target.services:
        raise TargetError(f"service name {lb!r} is reserved for the entry's load balancer")
    services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    for name, svc in target.services.items():
        fixed = entry_port if name == target.entry and lb is None else None
        services[name] = _service(name, svc, project, images, values, run_dir, fixed)
        if svc.kind == "process" and extra_env:
            services[name]["environment"] |= {k: _escape(v) for k, v in extra_env.items()}
        if svc.kind == "postgres":
            volumes[f"{name}-data"] = {"labels": {PROJECT_LABEL: project}}
    lb_config = None
    if lb is not None:
        entry = target.services[target.entry]
        services[lb] = _lb_service(target.entry, entry, project, images, run_dir, entry_port)
        lb_config = haproxy_config(target.entry, APP_PORT, entry.replicas)
    document: dict[str, Any] = {
        "version": "2.4",
        "services": services,
        "networks": {"default": {"labels": {PROJECT_LABEL: project}}},
    }
    if volumes:
        document["volumes"] = volumes
    scale = {name: svc.replicas for name, svc in target.services.items()}
    if lb is not None:
        scale[lb] = 1
        ports[lb] = APP_PORT
    return ComposePlan(document, scale, ports, lb, lb_config)


def _values(scenario: Scenario, ports: dict[str, int]) -> dict[str, str]:
    values = {"python": "python", "run_dir": RUN_DIR_MOUNT}
    for name, svc in scenario.target.services.items():
        port = ports[name]
        values[f"services.{name}.url"] = _url(svc.kind, name, port)
        values[f"services.{name}.port"] = str(port)
        values[f"services.{name}.host"] = name
    return values


def _url(kind: str, host: str, port: int) -> str:
    if kind == "valkey":
        return f"redis://{host}:{port}/0"
    if kind == "postgres":
        return f"postgresql://postgres@{host}:{port}/postgres"
    return f"http://{host}:{port}"


def _service(name: str, svc: Service, project: str, images: Mapping[str, str],
             values: dict[str, str], run_dir: Path, fixed_port: int | None) -> dict[str, Any]:
    port = container_port(svc)
    mine = values | {"port": str(port)}
    where = f"service {name}"
    env = {k: _escape(fill(v, mine, f"{where}: env.{k}")) for k, v in svc.env.items()}
    spec: dict[str, Any] = {
        "image": svc.image or _image(images, svc.kind),
        "labels": {PROJECT_LABEL: project, SERVICE_LABEL: name, ROLE_LABEL: svc.role},
        "ports": [_publish(port, fixed_port)],
        "stop_grace_period": STOP_GRACE,
    }
    if svc.kind == "process":
        assert svc.command is not None  # the scenario model requires it for kind=process
        spec["command"] = [_escape(fill(part, mine, f"{where}: command")) for part in svc.command]
        env |= {"PORT": str(port), "HARNESS_SERVICE": name, "HARNESS_BIND_HOST": "0.0.0.0",
                "PYTHONUNBUFFERED": "1"}
        spec["volumes"] = [f"{run_dir.resolve()}:{RUN_DIR_MOUNT}"]
    elif svc.kind == "valkey":
        spec["command"] = list(_REDIS_ARGS)
    else:
        spec["command"] = list(_POSTGRES_ARGS)
        spec["stop_signal"] = "SIGINT"  # fast shutdown; SIGTERM waits for every client
        env["POSTGRES_HOST_AUTH_METHOD"] = "trust"
        spec["volumes"] = [f"{name}-data:/var/lib/postgresql/data"]
    if env:
        spec["environment"] = env
    spec |= _limits(svc.cpu, svc.memory)
    if svc.depends_on:
        spec["depends_on"] = list(svc.depends_on)
    return spec


def _lb_service(entry: str, svc: Service, project: str, images: Mapping[str, str],
                run_dir: Path, entry_port: int | None) -> dict[str, Any]:
    return {
        "image": _image(images, "lb"),
        "labels": {PROJECT_LABEL: project, SERVICE_LABEL: f"{entry}-lb", ROLE_LABEL: svc.role},
        "ports": [_publish(APP_PORT, entry_port)],
        "volumes": [f"{(run_dir / LB_CONFIG).resolve()}:/usr/local/etc/haproxy/haproxy.cfg:ro"],
        "depends_on": [entry],
        "stop_grace_period": STOP_GRACE,
        **_limits(LB_CPU, LB_MEMORY),
    }


def haproxy_config(entry: str, port: int, replicas: int) -> str:
    """Round robin over the entry's replicas, found through compose's DNS (re-resolved)."""
    return "\n".join([
        "global", "    maxconn 4096",
        "defaults", "    mode http", "    timeout connect 5s", "    timeout client 120s",
        "    timeout server 120s",
        "resolvers compose", "    nameserver dns 127.0.0.11:53", "    hold valid 1s",
        "    accepted_payload_size 8192",
        "frontend entry", f"    bind :{APP_PORT}", "    default_backend replicas",
        "backend replicas", "    balance roundrobin",
        f"    server-template replica {replicas} {entry}:{port} check inter 2s "
        "resolvers compose init-addr none",
    ]) + "\n"


def _image(images: Mapping[str, str], kind: str) -> str:
    var = IMAGE_VARS[kind]
    if var not in images:
        raise TargetError(f"no image for {kind} services: {var} is not set; run "
                          "`harness images bootstrap`")
    return images[var]


def _publish(port: int, host_port: int | None) -> str:
    return f"127.0.0.1:{host_port or ''}:{port}"


def _limits(cpu: float | None, memory: int | None) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if cpu is not None:
        limits["cpus"] = float(cpu)
    if memory is not None:
        limits["mem_limit"] = int(memory)
        limits["memswap_limit"] = int(memory)  # no swap: the limit is the provisioned size
    return limits


def _escape(text: str) -> str:
    """Compose interpolates ``$VAR`` in the file; scenario text is meant literally."""
    return text.replace("$", "$$")
