"""Scale out on Locust's master/worker engine: the run's process is the master; load comes
from worker processes (``traffic.workers: N`` local ones, and remote ones that join with
``harness worker --master HOST:PORT``). Users are spread by Locust; the open-model rate is
split by giving each worker a share (re-split when a worker goes missing)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from locust.env import Environment

from harness.errors import RunFailed
from harness.stack.process import ChildProcess
from harness.traffic.design import MixDesign
from harness.traffic.heap import settle_heap
from harness.traffic.recorder import PhaseClock, Recorder
from harness.traffic.schedule import Level, Schedule
from harness.traffic.users import Dispatcher, build_users
from harness.util import atomic_write_json, free_port

if TYPE_CHECKING:
    from harness.scenario import Scenario

CONNECT_TIMEOUT_S = 30.0
POOL_READY_S = 15.0


class DistributedTraffic:
    """Same interface as :class:`~harness.traffic.engine.Traffic`, on a master runner."""

    def __init__(self, scenario: Scenario, host: str, recorder: Recorder, clock: PhaseClock,
                 run_dir: Path, local: int, remote: int = 0, bind: str | None = None) -> None:
        self.scenario, self.host, self.clock, self.run_dir = scenario, host, clock, run_dir
        self.recorder = recorder
        self.schedule = Schedule(scenario.traffic)
        # The workers play the same design (same seed, same Unix-time windows); ``auto`` does
        # not switch on here: the master does not see responses before the workers ship them.
        self.design = MixDesign.of(scenario.traffic, [r.weight for r in scenario.requests])
        self.expected = local + remote
        dummy = (Dispatcher(lambda t: 0.0, "constant", 0)
                 if self.schedule.open and scenario.locustfile is None else None)
        users = build_users(scenario, host, dummy, seed=0)  # same class names as the workers'
        self.env = Environment(user_classes=users, host=host,
                               stop_timeout=scenario.traffic.timeout + 1.0)
        bind_host, bind_port = _bind(bind)
        self.runner = self.env.create_master_runner(bind_host, bind_port)
        self.runner.register_message("harness_records",
                                     lambda msg, **_: recorder.add_rows(msg.data["rows"]))
        self.runner.register_message("harness_flushed", self._on_flushed)
        connect = self.env.events.worker_connect
        connect.add_listener(self._on_connect)  # type: ignore[no-untyped-call]
        self.t0: float | None = None
        self.flushed: dict[str, int] = {}
        self.lost: list[str] = []
        self._level: Level | None = None
        self._share = 1.0
        self._multiplier = 1.0
        self.procs = [self._spawn_local(i, bind_port) for i in range(local)]

    def _spawn_local(self, index: int, port: int) -> ChildProcess:
        path = self.run_dir / "worker-scenario.json"
        data = self.scenario.model_dump(mode="json", exclude_unset=True)
        atomic_write_json(path, data | {"_source": str(self.scenario.source)})
        argv = [sys.executable, "-m", "harness.cli", "worker", "--master", f"127.0.0.1:{port}",
                "--scenario-json", str(path), "--run-dir", str(self.run_dir),
                "--name", f"w{index}", "--variant", self.recorder.variant]
        env = dict(os.environ) | {"HARNESS_RUN_DIR": str(self.run_dir.resolve())}
        log = self.run_dir / "logs" / f"worker-{index}.log"
        return ChildProcess(f"worker-{index}", argv, env, log)

    def _setup(self) -> dict[str, Any]:
        return {"host": self.host, "t0": self.t0, "share": self._share,
                "phase": self.clock.current, "multiplier": self.schedule.multiplier}

    def _on_connect(self, client_id: str, **_: Any) -> None:
        self.runner.send_message("harness_setup", self._setup(), client_id)

    def _on_flushed(self, msg: Any, **_: Any) -> None:
        self.flushed[msg.data["worker"]] = msg.data["records"]

    def start(self) -> None:
        deadline = time.time() + CONNECT_TIMEOUT_S
        while self.runner.worker_count < self.expected:
            dead = [p.name for p in self.procs if p.exit_code() is not None]
            if dead or time.time() > deadline:
                tail = "\n".join(p.tail(5) for p in self.procs if p.exit_code() is not None)
                raise RunFailed(f"{self.runner.worker_count} of {self.expected} load-generator "
                                f"workers connected{'; exited: ' + ', '.join(dead) if dead else ''}"
                                f"\n{tail}".rstrip())
            gevent.sleep(0.1)
        self._share = 1.0 / self.expected
        settle_heap()
        first = self.schedule.at(0.0)
        self.runner.start(first.users, spawn_rate=first.spawn_rate)
        self._level = first
        if self.schedule.open:  # the clock starts once the users are there to take arrivals
            self._wait(lambda: sum(c.user_count for c in self.runner.clients.all) >= first.users,
                       POOL_READY_S)  # users the workers report as spawned
        self.t0 = time.time()
        self.runner.send_message("harness_setup", self._setup())

    def phase_changed(self, name: str) -> None:
        self.runner.send_message("harness_phase", {"value": name})

    def tick(self) -> None:
        assert self.t0 is not None
        self._check_missing()
        if self.schedule.multiplier != self._multiplier:
            self._multiplier = self.schedule.multiplier
            self.runner.send_message("harness_multiplier", {"value": self._multiplier})
        level = self.schedule.at(time.time() - self.t0)
        if self._level is None or level.users != self._level.users:
            self.runner.start(level.users, spawn_rate=level.spawn_rate)
        self._level = level

    def _check_missing(self) -> None:
        missing = [c.id for c in self.runner.clients.missing if c.id not in self.lost]
        if not missing:
            return
        self.lost += missing
        alive = max(1, self.runner.worker_count)
        self._share = 1.0 / alive
        self.runner.send_message("harness_share", {"value": self._share})
        self._level = None  # re-spread the users over the workers left

    def stop(self) -> None:
        """Stop users (requests in flight finish), collect every worker's last batch, quit."""
        self.runner.stop()
        timeout = self.scenario.traffic.timeout + 5.0
        self._wait(lambda: all(c.state != "running" and c.state != "spawning"
                               for c in self.runner.clients.all), timeout)
        self.runner.send_message("harness_flush", None)
        live = self.runner.worker_count
        self._wait(lambda: len(self.flushed) >= live, timeout)
        self.runner.quit()
        self._wait(lambda: all(p.exit_code() is not None for p in self.procs), timeout)
        for proc in self.procs:
            proc.stop()

    @staticmethod
    def _wait(done: Any, timeout: float) -> None:
        deadline = time.time() + timeout
        while not done() and time.time() < deadline:
            gevent.sleep(0.1)

    def asked_rps(self, start: float, end: float) -> float | None:
        if not self.schedule.open or end <= start or self.t0 is None:
            return None
        t0 = self.t0
        arrivals = self.schedule.asked_arrivals(
            start - t0, end - t0, factor=lambda t: self.design.rate_factor(t0 + t))
        return arrivals / (end - start)

    def counts(self) -> tuple[int, int]:
        total = self.env.stats.total
        return int(total.num_requests), int(total.num_failures)

    def stats(self) -> dict[str, Any]:
        return {"design": self.design.describe(), "workers": self.expected,
                "workers_lost": self.lost, "records_per_worker": self.flushed}


def _bind(bind: str | None) -> tuple[str, int]:
    if bind is None:
        return "127.0.0.1", free_port()
    host, _, port = bind.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)
