"""A designed traffic mix: endpoint weights (and the open model's rate) varied per window.

Per-endpoint cost of a service that reports nothing about its requests can be fitted from its
metered usage only if the windows differ in what they ask of it: with one fixed mix, every
window's CPU is the same multiple of every endpoint's count and no fit can tell them apart.
So every ``window`` seconds each endpoint's weight is multiplied by a log-uniform factor in
[1/spread, spread], and the open model's rate by one of 1-swing, 1, 1+swing; the rate's
variation is what separates a cost every call shares from the service's idle use.

Windows sit on the Unix-time grid (window k covers [k*w, (k+1)*w)) and each window's factors
come from ``seed`` and k alone, so every load-generator process (workers included) plays the
same design without talking to the others, and analysis can cut the same windows later.
``auto`` starts inactive; :meth:`MixDesign.activate` turns it on mid-run (once the entry is
seen to send no CPU telemetry).
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.scenario import Traffic

# Below this many recorded requests, ``auto`` does not judge whether the target reports CPU.
AUTO_MIN_RECORDS = 20


class MixDesign:
    """The weights and rate factor in force at a moment; cheap to ask once per request."""

    def __init__(self, weights: Sequence[float], window_s: float, spread: float,
                 rate_swing: float, seed: int, mode: str) -> None:
        self.base = [float(w) for w in weights]
        self.window_s = float(window_s)
        self.spread = float(spread)
        self.rate_swing = float(rate_swing)
        self.seed = int(seed)
        self.mode = mode  # weighted | designed | auto
        self.active_from: float | None = None
        self._window = -1
        self._cum: list[float] = _cumulative(self.base)
        self._factor = 1.0

    @classmethod
    def of(cls, traffic: Traffic, weights: Sequence[float]) -> MixDesign:
        spec = traffic.design
        design = cls(weights, spec.window, spec.spread, spec.rate_swing, spec.seed, traffic.mix)
        if traffic.mix == "designed":
            design.active_from = 0.0  # from the start, in every process
        return design

    @property
    def active(self) -> bool:
        return self.active_from is not None

    def activate(self, now: float) -> None:
        """Play the design from ``now`` on (auto: the target sends no CPU telemetry)."""
        if self.active_from is None and self.mode != "weighted":
            self.active_from = now

    def cumulative(self, now: float | None = None) -> list[float]:
        """Cumulative endpoint weights in force at ``now`` (Unix seconds; default: the clock,
        read only while the design plays: this runs once per request)."""
        if self.active_from is None:
            return self._cum
        self._move(time.time() if now is None else now)
        return self._cum

    def rate_factor(self, now: float) -> float:
        """The open model's rate multiplier at ``now``."""
        if self.active_from is None or now < self.active_from:
            return 1.0
        self._move(now)
        return self._factor

    def factors(self, window: int) -> tuple[float, list[float]]:
        """Rate factor and weight multipliers of window ``window`` (a pure function of it)."""
        rng = random.Random(self.seed * 1_000_003 + window)
        log_spread = math.log(self.spread)
        multipliers = [math.exp(rng.uniform(-log_spread, log_spread)) for _ in self.base]
        rate = 1.0 + self.rate_swing * rng.choice((-1.0, 0.0, 1.0))
        return rate, multipliers

    def describe(self) -> dict[str, Any]:
        """What analysis needs to cut the same windows (the manifest's ``traffic.design``)."""
        return {"mode": self.mode, "active_from": self.active_from, "window_s": self.window_s,
                "spread": self.spread, "rate_swing": self.rate_swing, "seed": self.seed}

    def _move(self, now: float) -> None:
        window = int(now // self.window_s)
        if window != self._window:
            self._window = window
            self._factor, multipliers = self.factors(window)
            self._cum = _cumulative([b * m for b, m in zip(self.base, multipliers, strict=True)])


def _cumulative(weights: Sequence[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


_CPU_METRIC = re.compile(r"(?:^|,)\s*cpu\s*(?:;|,|$)")


def reports_cpu(timing: str | None) -> bool:
    """Whether a ``Server-Timing`` value carries the ``cpu`` metric (auto's test)."""
    return timing is not None and _CPU_METRIC.search(timing) is not None
