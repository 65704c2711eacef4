"""Locust in library mode: one Environment, a local runner, our recorder on ``events.request``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import gevent
from locust.env import Environment

from harness.traffic.design import AUTO_MIN_RECORDS, MixDesign
from harness.traffic.heap import settle_heap
from harness.traffic.recorder import Recorder
from harness.traffic.schedule import Level, Schedule
from harness.traffic.users import Dispatcher, build_users

if TYPE_CHECKING:
    from harness.scenario import Scenario


POOL_READY_S = 10.0


class Traffic:
    """Starts, steers (``tick``) and stops the load for one run."""

    def __init__(self, scenario: Scenario, host: str, recorder: Recorder, seed: int = 1) -> None:
        self.scenario = scenario
        self.recorder = recorder
        self.schedule = Schedule(scenario.traffic)
        self.design = MixDesign.of(scenario.traffic, [r.weight for r in scenario.requests])
        self.dispatcher: Dispatcher | None = None
        if self.schedule.open and scenario.locustfile is None:
            self.dispatcher = Dispatcher(lambda t: self.schedule.at(t).rate or 0.0,
                                         scenario.traffic.arrival, seed, self.design)
        users = build_users(scenario, host, self.dispatcher, seed, self.design)
        # stop_timeout: a stopping run lets requests in flight finish, so every request the
        # target served is recorded.
        self.env = Environment(user_classes=users, host=host,
                               stop_timeout=scenario.traffic.timeout + 1.0)
        self.env.events.request.add_listener(recorder.on_request)  # type: ignore[no-untyped-call]
        self.runner = self.env.create_local_runner()
        self.t0 = 0.0
        self._level: Level | None = None

    def start(self) -> None:
        """Spawn the users; the open model's clock starts once its pool is ready, so no
        arrival is dropped for want of a user that is merely not spawned yet."""
        settle_heap()
        self.t0 = time.time()
        self.tick()
        if self.dispatcher is not None:
            deadline = time.time() + POOL_READY_S
            pool = self.schedule.t.max_in_flight
            while self.runner.user_count < pool and time.time() < deadline:
                gevent.sleep(0.05)
            self.t0 = time.time()
            self.dispatcher.start(self.t0)

    def tick(self) -> None:
        """Apply the schedule's level for now (cheap when nothing changed)."""
        self._maybe_design()
        level = self.schedule.at(time.time() - self.t0)
        if self._level is None or level.users != self._level.users:
            self.runner.start(level.users, spawn_rate=level.spawn_rate)
        self._level = level

    def _maybe_design(self) -> None:
        """``mix: auto``: play the designed mix once the entry is seen to report no CPU."""
        design, recorder = self.design, self.recorder
        if design.mode == "auto" and not design.active and self.scenario.locustfile is None \
                and recorder.total >= AUTO_MIN_RECORDS and recorder.cpu_reported == 0:
            design.activate(time.time())

    def stop(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
        self.runner.quit()
        gevent.sleep(0)  # let killed users fire their last events

    def phase_changed(self, name: str) -> None:
        """The recorder reads the shared phase clock itself; nothing to send."""

    def counts(self) -> tuple[int, int]:
        return self.recorder.total, self.recorder.errors

    def asked_rps(self, start: float, end: float) -> float | None:
        """Open model: mean asked arrival rate over [start, end] (Unix seconds)."""
        if not self.schedule.open or end <= start:
            return None
        arrivals = self.schedule.asked_arrivals(
            start - self.t0, end - self.t0, factor=lambda t: self.design.rate_factor(self.t0 + t))
        return arrivals / (end - start)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"design": self.design.describe()}
        if self.dispatcher is not None:
            out |= {"arrivals": self.dispatcher.arrivals, "dropped": self.dispatcher.dropped}
        return out
