"""The autoscale-burst fault: a traffic spike plus an HPA-rule autoscaler acting on real
replicas, so the extra replicas' standing cost shows in the cost per call."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import gevent

from harness.faults.context import FaultContext
from harness.faults.hpa import HPA, Decision
from harness.scenario.faults import AutoscaleBurst


class AutoscaleBurstFault:
    def __init__(self, ctx: FaultContext, spec: AutoscaleBurst) -> None:
        self.ctx, self.spec = ctx, spec
        self.hpa = HPA(spec.autoscaler)
        self.decisions: list[Decision] = []
        self.initial: list[str] = []
        self._prev: dict[str, tuple[float, float]] = {}
        self._greenlet: gevent.Greenlet[Any, Any] | None = None
        self.scale_errors: list[str] = []

    def inject(self) -> dict[str, Any]:
        self.initial = self.ctx.stack.alive(self.spec.target)
        self.ctx.schedule.multiplier = self.spec.multiplier
        self._greenlet = gevent.spawn(self._loop)
        return {"multiplier": self.spec.multiplier, "replicas": len(self.initial)}

    def revert(self) -> dict[str, Any]:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=30)
        self.ctx.schedule.multiplier = 1.0
        peak = max((d.desired for d in self.decisions), default=len(self.initial))
        self._scale_to(len(self.initial))
        return {"peak_replicas": peak, "scale_errors": self.scale_errors,
                "decisions": [asdict(d) for d in self.decisions]}

    def _loop(self) -> None:
        t0 = time.time()
        while True:
            gevent.sleep(self.spec.autoscaler.sync_period)
            metric = self._utilisation()
            if metric is None:
                continue
            current = len(self.ctx.stack.alive(self.spec.target))
            decision = self.hpa.decide(time.time() - t0, current, metric)
            self.decisions.append(decision)
            self._scale_to(decision.desired)

    def _utilisation(self) -> float | None:
        """Mean CPU utilisation of the target's live replicas since the last look."""
        alive = set(self.ctx.stack.alive(self.spec.target))
        utils = []
        for s in self.ctx.sampler.latest:
            if s.service != self.spec.target or s.replica not in alive:
                continue
            prev = self._prev.get(s.replica)
            self._prev[s.replica] = (s.ts, s.cpu_s)
            if prev is not None and s.ts > prev[0]:
                utils.append((s.cpu_s - prev[1]) / (s.ts - prev[0]) / (s.cpu_limit or 1.0))
        return sum(utils) / len(utils) if utils else None

    def _scale_to(self, desired: int) -> None:
        stack, target = self.ctx.stack, self.spec.target
        alive = stack.alive(target)
        try:
            for _ in range(desired - len(alive)):
                stack.start_replica(target, self.ctx.cancel)
            for rid in list(reversed(alive))[: max(0, len(alive) - desired)]:
                stack.stop_replica(target, rid)
        except Exception as exc:  # recorded in the revert's details; the run goes on
            self.scale_errors.append(f"{type(exc).__name__}: {exc}")
