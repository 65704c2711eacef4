"""The ``faults:`` timeline of a scenario: typed fault specs, one model per kind.

Each fault names a target service, a start offset (seconds after warm-up), a duration and
parameters. The ``name`` becomes the phase that requests and usage samples carry while the
fault is active; after it, the phase is ``recovery`` until the next fault.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from harness.scenario.values import (
    Count,
    Duration,
    Memory,
    NonNegative,
    PositiveDuration,
    Problem,
    StrictModel,
    show,
)

RESERVED_PHASES = frozenset({"startup", "warmup", "baseline", "recovery", "teardown"})
_PHASE = re.compile(r"[A-Za-z0-9._-]+")
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Fault(StrictModel):
    name: str
    target: str
    start: Duration = 0.0
    duration: PositiveDuration = 10.0

    @field_validator("name")
    @classmethod
    def _phase_name(cls, value: str) -> str:
        if not _PHASE.fullmatch(value):
            raise ValueError(f"must match [A-Za-z0-9._-]+ (it names a phase), got {show(value)}")
        if value in RESERVED_PHASES:
            raise ValueError(f"{show(value)} is a reserved phase name; choose another")
        return value

    @property
    def end(self) -> float:
        return self.start + self.duration


DownstreamMode = Literal["latency", "http_error", "timeout", "reset_peer", "bandwidth",
                         "slicer", "limit_data", "slow_close", "down"]


class Downstream(_Fault):
    """A failing dependency, through the fault proxy in front of ``target``."""

    kind: Literal["downstream"]
    mode: DownstreamMode = "latency"
    latency_ms: NonNegative = 0.0
    jitter_ms: NonNegative = 0.0
    status: Annotated[int, Field(ge=400, le=599)] = 503
    error_rate: Fraction = 1.0
    first_n: Annotated[int, Field(ge=0)] = 0
    rate_kbps: Annotated[float, Field(ge=1)] = 64.0
    timeout_ms: NonNegative = 0.0
    bytes: Annotated[int, Field(ge=0)] = 0
    toxicity: Fraction = 1.0
    stream: Literal["upstream", "downstream"] = "downstream"


class ProcessFault(_Fault):
    """Hard failures of replicas: kill (SIGKILL), stop (SIGTERM), pause (SIGSTOP / docker pause).
    Revert restarts killed or stopped replicas and resumes paused ones."""

    kind: Literal["kill", "stop", "pause"]
    replicas: Count = 1


class CacheEviction(_Fault):
    kind: Literal["cache_eviction"]
    mode: Literal["flush_all", "fraction", "pattern", "maxmemory"] = "flush_all"
    fraction: Fraction = 1.0
    pattern: str = "*"
    maxmemory: Memory = 1 << 20


class ColdStart(_Fault):
    """Restart ``replicas`` replicas under load; ``warm_pool`` starts the new ones first."""

    kind: Literal["cold_start"]
    replicas: Count = 1
    warm_pool: bool = False


class Autoscaler(StrictModel):
    """The Kubernetes HPA rule: desired = ceil(current × metric / target)."""

    min_replicas: Count = 1
    max_replicas: Count = 4
    target_cpu: Annotated[float, Field(gt=0, le=1)] = 0.6  # mean CPU utilisation per replica
    tolerance: Fraction = 0.1
    sync_period: PositiveDuration = 1.0
    scale_up_window: Duration = 0.0
    scale_down_window: Duration = 10.0

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaler:
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        return self


class AutoscaleBurst(_Fault):
    kind: Literal["autoscale_burst"]
    multiplier: Annotated[float, Field(gt=0)] = 3.0
    autoscaler: Autoscaler = Field(default_factory=Autoscaler)


class RetryStorm(_Fault):
    """The dependency ``target`` degrades (HTTP errors at a rate); the caller's retry policy
    multiplies external calls."""

    kind: Literal["retry_storm"]
    error_rate: Fraction = 0.5
    status: Annotated[int, Field(ge=400, le=599)] = 503
    latency_ms: NonNegative = 0.0


class LogLevel(_Fault):
    kind: Literal["log_level"]
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "DEBUG"


class NoisyNeighbour(_Fault):
    """CPU hogs beside the target's replicas, competing for the same cores."""

    kind: Literal["noisy_neighbour"]
    hogs: Count = 1


FaultSpec = Annotated[
    Downstream | ProcessFault | CacheEviction | ColdStart | AutoscaleBurst | RetryStorm
    | LogLevel | NoisyNeighbour,
    Field(discriminator="kind"),
]
FAULT_KINDS = ("downstream", "kill", "stop", "pause", "cache_eviction", "cold_start",
               "autoscale_burst", "retry_storm", "log_level", "noisy_neighbour")
PROXIED_KINDS = frozenset({"downstream", "retry_storm"})


def _hint(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f'; did you mean "{close[0]}"?' if close else ""


def fault_problems(faults: Sequence[_Fault], services: list[str],
                   measured: float) -> list[Problem]:
    """Cross-field problems of the timeline: unknown targets, duplicate names, windows past the
    end of the run, and overlapping faults on the same target (they would fight over it)."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, fault in enumerate(faults):
        if fault.target not in services:
            problems.append((("faults", i, "target"), f"{show(fault.target)} names no service "
                             f"(known: {', '.join(services)}){_hint(fault.target, services)}"))
        if seen.setdefault(fault.name, i) != i:
            first = seen[fault.name]
            problems.append((("faults", i, "name"),
                             f"duplicate fault name {show(fault.name)} (also faults[{first}])"))
        if fault.end > measured + 1e-9:
            problems.append((("faults", i, "duration"), f"the fault ends at {fault.end:g} s, after "
                             f"the measured duration ({measured:g} s)"))
        for j, other in enumerate(faults[:i]):
            if other.target == fault.target and fault.start < other.end and other.start < fault.end:
                problems.append((("faults", i, "start"), f"overlaps faults[{j}] "
                                 f"({show(other.name)}) on the same target {show(fault.target)}"))
    return problems
