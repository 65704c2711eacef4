"""How the payments stand-in behaves: latency, jitter, failure rate and mode.

Set at start from ``PAYMENTS_*`` variables and changed at run time through ``POST /control``
(faults use it). Modes:

* ``ok`` — answer after ``latency_ms`` ± ``jitter_ms``; fail with 503 at ``fail_rate``;
* ``fail`` — every charge fails with 503 after the latency;
* ``slow`` — like ``ok`` but after ``slow_ms`` ± ``jitter_ms``;
* ``timeout`` — hold the request for ``hold_ms``, then 504 (callers time out first); held
  requests are released at once when the mode changes. A held request occupies a server
  thread, so keep ``hold_ms`` a little above the callers' timeout and ``PAYMENTS_THREADS``
  above the callers' concurrency, or ``/control`` itself would wait for a free thread.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Literal

Mode = Literal["ok", "fail", "slow", "timeout"]
MODES: tuple[Mode, ...] = ("ok", "fail", "slow", "timeout")
Outcome = Literal["succeeded", "failed", "timed_out"]

_NUMBERS: dict[str, tuple[float, float]] = {  # field -> allowed range
    "latency_ms": (0, 600_000),
    "jitter_ms": (0, 600_000),
    "fail_rate": (0, 1),
    "slow_ms": (0, 600_000),
    "hold_ms": (0, 3_600_000),
}
_ENV = {name: f"PAYMENTS_{name.upper()}" for name in (*_NUMBERS, "mode")}


class BehaviourError(ValueError):
    """A setting is invalid; the message names it and what is allowed."""


@dataclass(frozen=True, slots=True)
class Settings:
    latency_ms: float = 20.0
    jitter_ms: float = 5.0
    fail_rate: float = 0.0
    mode: Mode = "ok"
    slow_ms: float = 1000.0
    hold_ms: float = 3000.0  # just over the shop's 2 s client timeout: threads free up soon


def parse_settings(base: Settings, changes: Mapping[str, object], env: bool = False) -> Settings:
    """``base`` with ``changes`` applied; keys are field names, or ``PAYMENTS_*`` if ``env``."""
    names = {(_ENV[f] if env else f): f for f in _ENV}
    unknown = sorted(set(changes) - set(names))
    if unknown and not env:
        raise BehaviourError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(_ENV)}")
    values: dict[str, object] = {}
    for key, field in names.items():
        if key in changes and (raw := changes[key]) != "":
            values[field] = _mode(key, raw) if field == "mode" else _number(key, field, raw)
    return replace(base, **values)  # type: ignore[arg-type]


def _mode(key: str, raw: object) -> Mode:
    if raw not in MODES:
        raise BehaviourError(f"invalid {key}={raw!r}; allowed values: {', '.join(MODES)}")
    return raw


def _number(key: str, field: str, raw: object) -> float:
    low, high = _NUMBERS[field]
    try:
        value = float(raw) if isinstance(raw, (int, float, str)) else float("nan")
    except ValueError:
        value = float("nan")
    if isinstance(raw, bool) or not low <= value <= high:
        raise BehaviourError(f"invalid {key}={raw!r}; expected a number from {low:g} to {high:g}")
    return value


class Behaviour:
    """The current settings and the counts of charges, shared by all server threads."""

    def __init__(self, settings: Settings, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._settings = settings
        self._release = threading.Event()
        self._rng = random.Random(seed)
        self._counts = {"attempted": 0, "succeeded": 0, "failed": 0, "timed_out": 0}

    def settings(self) -> Settings:
        with self._lock:
            return self._settings

    def update(self, changes: Mapping[str, object]) -> Settings:
        with self._lock:
            new = parse_settings(self._settings, changes)
            if new.mode != self._settings.mode:
                self._release.set()  # free requests held by the previous mode
                self._release = threading.Event()
            self._settings = new
            return new

    def plan(self) -> tuple[Outcome, float, threading.Event]:
        """Decide one charge: its outcome, how long to wait (s) and the event ending a hold."""
        with self._lock:
            s, rng = self._settings, self._rng
            self._counts["attempted"] += 1
            base = {"slow": s.slow_ms, "timeout": s.hold_ms}.get(s.mode, s.latency_ms)
            jitter = 0.0 if s.mode == "timeout" else rng.uniform(-s.jitter_ms, s.jitter_ms)
            outcome: Outcome = "succeeded"
            if s.mode == "timeout":
                outcome = "timed_out"
            elif s.mode == "fail" or rng.random() < s.fail_rate:
                outcome = "failed"
            self._counts[outcome] += 1
            return outcome, max(0.0, base + jitter) / 1000, self._release

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def describe(self) -> dict[str, object]:
        return asdict(self.settings())
