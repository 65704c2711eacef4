"""The load level asked at each moment of a run: users (closed model) or arrivals/s (open).

Warm-up runs at the base level (``users`` / ``rate``, else the first stage's). Stages then
follow one another; an open-model stage ramps linearly from the previous rate to its own, as
k6's ``ramping-arrival-rate`` does; a closed-model stage sets users at its spawn rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.scenario import Traffic


@dataclass(frozen=True, slots=True)
class Level:
    users: int  # closed model: concurrent users; open model: the in-flight pool size
    spawn_rate: float
    rate: float | None  # open model only


class Schedule:
    def __init__(self, traffic: Traffic) -> None:
        self.t = traffic
        self.open = traffic.model == "open"
        self.stages = traffic.stages or []
        self.multiplier = 1.0  # a traffic burst (autoscale fault) scales the level

    def _base_users(self) -> int:
        if self.t.users is not None:
            return int(self.t.users)
        first = self.stages[0].users if self.stages else None
        return int(first or 1)

    def _base_rate(self) -> float:
        if self.t.rate is not None:
            return float(self.t.rate)
        first = self.stages[0].rate if self.stages else None
        return float(first or 0.0)

    def at(self, elapsed: float) -> Level:
        """The level at ``elapsed`` seconds since traffic started (warm-up included)."""
        if self.open:
            pool = int(self.t.max_in_flight)
            rate = self._rate_at(elapsed) * self.multiplier
            return Level(pool, float(min(pool, 100)), rate)  # Locust warns above 100/s
        users, spawn = self._users_at(elapsed)
        return Level(math.ceil(users * self.multiplier), spawn, None)

    def _users_at(self, elapsed: float) -> tuple[int, float]:
        users = self._base_users()
        spawn = float(self.t.spawn_rate or users)
        since = elapsed - self.t.warmup
        for stage in self.stages if since >= 0 else []:
            users = int(stage.users if stage.users is not None else users)
            spawn = float(stage.spawn_rate or spawn)
            if since < stage.duration:
                break
            since -= stage.duration
        return users, spawn

    def _rate_at(self, elapsed: float) -> float:
        rate = self._base_rate()
        since = elapsed - self.t.warmup
        if since < 0:
            return rate
        for stage in self.stages:
            target = float(stage.rate if stage.rate is not None else rate)
            if since < stage.duration:
                return rate + (target - rate) * since / stage.duration
            since -= stage.duration
            rate = target
        return rate

    def asked_arrivals(self, start: float, end: float, step: float = 0.01,
                       factor: Callable[[float], float] | None = None) -> float:
        """Integral of the open-model rate over [start, end) seconds (numeric, 10 ms steps);
        ``factor(t)`` scales it (a designed mix's rate factor)."""
        total, t = 0.0, start
        while t < end:
            dt = min(step, end - t)
            middle = t + dt / 2
            total += self._rate_at(middle) * dt * (factor(middle) if factor else 1.0)
            t += dt
        return total
