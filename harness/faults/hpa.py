"""The Kubernetes Horizontal Pod Autoscaler rule, as a pure function of a metric trace.

desired = ceil(current × metric / target), skipped while |metric/target − 1| ≤ tolerance,
clamped to [min, max]; scale-up uses the lowest recommendation of the scale-up window and
scale-down the highest of the scale-down window (the HPA's stabilization windows).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from harness.scenario.faults import Autoscaler


@dataclass(frozen=True)
class Decision:
    t: float
    current: int
    metric: float
    recommended: int
    desired: int


class HPA:
    def __init__(self, config: Autoscaler) -> None:
        self.cfg = config
        self._history: deque[tuple[float, int]] = deque()

    def recommend(self, current: int, metric: float) -> int:
        ratio = metric / self.cfg.target_cpu
        within = abs(ratio - 1.0) <= self.cfg.tolerance
        raw = current if within else math.ceil(current * ratio)
        return max(self.cfg.min_replicas, min(self.cfg.max_replicas, raw))

    def decide(self, t: float, current: int, metric: float) -> Decision:
        rec = self.recommend(current, metric)
        self._history.append((t, rec))
        keep = max(self.cfg.scale_up_window, self.cfg.scale_down_window)
        while self._history and self._history[0][0] < t - keep:
            self._history.popleft()
        desired = rec
        if rec > current:
            window = [r for ts, r in self._history if ts >= t - self.cfg.scale_up_window]
            desired = max(current, min(window))
        elif rec < current:
            window = [r for ts, r in self._history if ts >= t - self.cfg.scale_down_window]
            desired = min(current, max(window))
        return Decision(t, current, metric, rec, desired)
