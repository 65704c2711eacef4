"""`harness run --dry-run`: print what a run would do, start nothing."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from pydantic import BaseModel

if TYPE_CHECKING:
    from harness.scenario import Scenario, Traffic


def plan_lines(scenario: Scenario, price_book: str, variant: str = "default") -> list[str]:
    t = scenario.traffic
    lines = [f"scenario {scenario.name!r} (variant {variant}) on the "
             f"{scenario.target.runtime} runtime, priced with {price_book}"]
    if scenario.target.compose is not None:
        lines.append(f"  compose file {scenario.target.compose} (run as is, its own project)")
    for name, svc in scenario.target.services.items():
        entry = " (receives traffic)" if name == scenario.target.entry else ""
        if svc.kind == "compose":
            lines.append(f"  service {name}{entry}: as the compose file says, role {svc.role}")
            continue
        what = shlex.join(svc.command or []) if svc.kind == "process" else (
            f"built-in {svc.kind} server")
        under = f" under {svc.interpreter}" if svc.interpreter is not None else ""
        lines.append(f"  service {name}{entry}: {what}{under} × {svc.replicas}, role {svc.role}")
    level = (f"{t.rate:g} arrivals/s ({t.arrival}), up to {t.max_in_flight} in flight"
             if t.model == "open" else f"{t.users} users")
    lines.append(f"  traffic: {t.model} model, {level}")
    lines.append(f"  mix: {_mix(t)}")
    lines.append(f"  timeline: 0 s warm-up ({t.warmup:g} s, not priced)")
    start = t.warmup
    for i, stage in enumerate(t.stages or []):
        target = f"{stage.rate:g}/s" if stage.rate is not None else f"{stage.users} users"
        lines.append(f"            {start:g} s stage {i + 1}: {target} for {stage.duration:g} s")
        start += stage.duration
    lines.append(f"            {t.warmup:g} s → {t.total_duration:g} s measured")
    source = (f"locustfile {scenario.locustfile}" if scenario.locustfile else
              ", ".join(f"{r.name} ×{r.weight:g}" for r in scenario.requests))
    lines.append(f"  requests: {source}")
    for f in scenario.faults:
        lines.append(f"  fault {f.name}: {f.kind} on {f.target} from {t.warmup + f.start:g} s to "
                     f"{t.warmup + f.end:g} s, {_params(f)}")
    return lines


def _params(fault: BaseModel) -> str:
    data = fault.model_dump(exclude={"name", "kind", "target", "start", "duration"})
    return ", ".join(f"{k}={v}" for k, v in data.items()) or "no parameters"


def print_plan(scenario: Scenario, price_book: str, variant: str = "default") -> None:
    print("\n".join(["dry run: nothing is started",
                     *plan_lines(scenario, price_book, variant)]))


def _mix(t: Traffic) -> str:
    """How the endpoint weights move (docs/blackbox.md)."""
    d = t.design
    designed = (f"weights x [1/{d.spread:g}, {d.spread:g}] and rate x 1±{d.rate_swing:g} "
                f"per {d.window:g} s window (seed {d.seed})")
    if t.mix == "weighted":
        return "weighted (the requests' weights throughout)"
    if t.mix == "designed":
        return f"designed: {designed}"
    return f"auto (designed once the entry is seen to report no CPU: {designed})"
