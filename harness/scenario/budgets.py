"""Budgets of the CI gate: the scenario's ``gate:`` block and ``--budget`` on the command line.

A budget limits one metric, overall, per endpoint (``endpoint: "*"`` is every endpoint) or per
cost category, at a ``warn`` and/or a ``fail`` level. A level is written as

* ``+10%`` — a relative change over the baseline (``-10%`` for throughput, which must not drop);
* ``+0.000001`` / ``+$0.000001`` / ``+20ms`` / ``+1pp`` — an absolute change over the baseline
  in the metric's unit (``pp``: percentage points of error rate);
* ``0.00002`` / ``$0.00002`` / ``250ms`` / ``1%`` / ``30rps`` — a limit on the candidate itself
  (an upper limit; a lower limit for throughput); it needs no baseline.

On the command line: ``METRIC[SCOPE]:LEVELS`` where SCOPE is an endpoint name, ``*`` or
``category=NAME`` and LEVELS is ``FAIL`` or ``warn=W,fail=F`` — e.g.
``cost_per_call[GET /cpu]:warn=+5%,fail=+10%``. See docs/ci-gate.md.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, Field, PlainSerializer, ValidationError, model_validator

from harness.errors import InputError, ScenarioInvalid
from harness.scenario.reading import format_loc, parse_document, read_text, validation_problems
from harness.scenario.values import Problem, ProblemList, StrictModel, show

Metric = Literal[
    "cost_per_call",
    "direct_cost_per_call",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "error_rate",
    "throughput",
]
COST_METRICS = ("cost_per_call", "direct_cost_per_call")
LOWER_IS_WORSE = ("throughput",)
Category = Literal["compute", "memory", "egress", "database", "cache", "external",
                   "observability", "requests", "amortized", "unattributed"]  # fmt: skip
CATEGORY_NAMES: tuple[str, ...] = get_args(Category)
Kind = Literal["relative", "delta", "limit"]


class BudgetError(InputError):
    """A budget (``--budget`` or the scenario's ``gate:`` block) cannot be used."""


@dataclass(frozen=True)
class Threshold:
    """A parsed level: ``value`` is in the metric's base unit (USD, ms, fraction, req/s) and
    signed as written; ``text`` is what the user wrote (what dumps give back)."""

    kind: Kind
    value: float
    text: str

    def __str__(self) -> str:
        return self.text


_LEVEL = re.compile(
    r"(?P<sign>[+-])?\s*(?P<dollar>\$)?\s*(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
    r"\s*(?P<unit>%|pp|ms|s|rps|/s)?"
)
_UNITS: dict[str, dict[str, float]] = {  # metric family -> unit suffix -> factor to base unit
    "cost": {"": 1.0},
    "latency": {"": 1.0, "ms": 1.0, "s": 1000.0},
    "error_rate": {"": 1.0, "pp": 0.01},
    "throughput": {"": 1.0, "rps": 1.0, "/s": 1.0},
}
_HINT = {
    "cost": "+10%, +0.000001 or $0.00002",
    "latency": "+20%, +15ms or 250ms",
    "error_rate": "+50%, +1pp or 1%",
    "throughput": "-10%, -5rps or 30rps",
}


def family(metric: str) -> str:
    """``cost``, ``latency``, ``error_rate`` or ``throughput``."""
    if metric in COST_METRICS:
        return "cost"
    return "latency" if metric.endswith("_ms") else metric


def parse_threshold(value: object, metric: str) -> Threshold:
    """Parse one level for ``metric``; ValueError with the accepted forms otherwise."""
    fam = family(metric)
    if isinstance(value, Threshold):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be a level such as {_HINT[fam]}, got {show(value)}")
    text = value.strip() if isinstance(value, str) else repr(value)
    match = _LEVEL.fullmatch(text)
    if match is None:
        raise ValueError(f"must be a level such as {_HINT[fam]}, got {show(value)}")
    sign, unit = match["sign"], match["unit"] or ""
    number = float(match["num"])
    if match["dollar"] and (fam != "cost" or unit):
        raise ValueError(f"a $ amount is a plain cost (e.g. $0.00002), got {show(value)}")
    if not math.isfinite(number):
        raise ValueError(f"must be a finite number, got {show(value)}")
    if unit == "%":
        if sign is None and fam != "error_rate":
            raise ValueError(f"a relative change needs a sign (+10% or -10%), got {show(value)}")
        kind: Kind = "relative" if sign else "limit"
        scaled = number / 100.0
    else:
        factors = _UNITS[fam]
        if unit not in factors:
            raise ValueError(f"unit {unit!r} does not apply to {metric}; e.g. {_HINT[fam]}")
        kind = "delta" if sign else "limit"
        scaled = number * factors[unit]
    signed = -scaled if sign == "-" else scaled
    _check_direction(kind, signed, metric, text)
    return Threshold(kind, signed, text)


def _check_direction(kind: Kind, value: float, metric: str, text: str) -> None:
    lower = metric in LOWER_IS_WORSE
    if kind != "limit" and value != 0 and (value > 0) == lower:
        what = "a drop: write it with -" if lower else "an increase: write it with +"
        raise ValueError(f"{metric} budgets limit {what} (got {text!r})")


def _level_input(value: object) -> object:
    if value is None or isinstance(value, Threshold):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be a level such as +10%, +0.000001 or 250ms, got {show(value)}")
    return value


def _level_output(value: Threshold | str | float | None) -> str | float | None:
    return value.text if isinstance(value, Threshold) else value


Level = Annotated[
    Threshold | str | float | None,
    BeforeValidator(_level_input),
    PlainSerializer(_level_output),
]


class Budget(StrictModel):
    """One budget. ``warn``/``fail`` are parsed into :class:`Threshold` by the validator."""

    metric: Metric
    endpoint: Annotated[str, Field(min_length=1)] | None = None
    category: Category | None = None
    warn: Level = None
    fail: Level = None

    @model_validator(mode="after")
    def _check(self) -> Budget:
        problems: list[Problem] = []
        if self.warn is None and self.fail is None:
            problems.append(((), "give warn, fail or both"))
        if self.endpoint is not None and self.category is not None:
            problems.append((("category",), "give endpoint or category, not both"))
        if self.category is not None and self.metric not in COST_METRICS:
            problems.append((("category",), f"applies to cost metrics only, not {self.metric}"))
        for name in ("warn", "fail"):
            raw = getattr(self, name)
            if raw is None:
                continue
            try:
                setattr(self, name, parse_threshold(raw, self.metric))
            except ValueError as exc:
                problems.append(((name,), str(exc)))
        if not problems:
            problems += self._check_order()
        if problems:
            raise ProblemList(problems)
        return self

    def _check_order(self) -> list[Problem]:
        warn, fail = self.level("warn"), self.level("fail")
        if warn is None or fail is None or warn.kind != fail.kind:
            return []
        lower = self.metric in LOWER_IS_WORSE
        if (warn.value < fail.value) if lower else (warn.value > fail.value):
            return [(("warn",), f"{warn.text} is beyond the fail level {fail.text}")]
        return []

    def level(self, name: Literal["warn", "fail"]) -> Threshold | None:
        value = getattr(self, name)
        return value if isinstance(value, Threshold) else None

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        """What the budget limits: CLI budgets replace scenario budgets with the same key."""
        return (self.metric, self.endpoint, self.category)

    @property
    def label(self) -> str:
        """``cost_per_call``, ``cost_per_call[GET /cpu]``, ``cost_per_call[category=egress]``."""
        if self.category is not None:
            return f"{self.metric}[category={self.category}]"
        return self.metric if self.endpoint is None else f"{self.metric}[{self.endpoint}]"

    def levels_text(self) -> str:
        parts = [f"{n} {v.text}" for n in ("warn", "fail") if (v := self.level(n)) is not None]
        return ", ".join(parts)

    @property
    def needs_baseline(self) -> bool:
        return any(v.kind != "limit" for n in ("warn", "fail") if (v := self.level(n)))


class GateSpec(StrictModel):
    """The scenario's ``gate:`` block.

    ``baseline``: a run directory, a baseline directory or a baseline name (``baselines/NAME``)
    used when the command line names none. ``inconclusive: fail`` makes an inconclusive budget
    fail the gate (default: it passes, flagged). With no budgets, DEFAULT_BUDGETS apply.
    """

    baseline: str | None = None
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95
    inconclusive: Literal["pass", "fail"] = "pass"
    budgets: list[Budget] = Field(default_factory=list)


DEFAULT_BUDGETS: tuple[Budget, ...] = (
    Budget(metric="cost_per_call", warn="+5%", fail="+10%"),
    Budget(metric="cost_per_call", endpoint="*", warn="+5%", fail="+10%"),
)


def effective_budgets(spec: GateSpec, extra: list[Budget]) -> list[Budget]:
    """The scenario's budgets, with CLI budgets replacing those of the same key (or added);
    DEFAULT_BUDGETS when neither gives any."""
    merged = {b.key: b for b in spec.budgets}
    merged.update({b.key: b for b in extra})
    return list(merged.values()) or list(DEFAULT_BUDGETS)


_CLI = re.compile(r"(?P<metric>[A-Za-z0-9_]+)\s*(?:\[(?P<scope>.*)\])?\s*:(?P<levels>[^:]*)")


def _cli_fields(text: str) -> dict[str, Any]:
    match = _CLI.fullmatch(text.strip())
    if match is None:
        raise BudgetError(
            f"--budget {text!r}: expected METRIC[SCOPE]:LEVELS, "
            "e.g. 'cost_per_call:+10%' or 'p95_ms[GET /cpu]:warn=+10%,fail=+25%'"
        )
    fields: dict[str, Any] = {"metric": match["metric"]}
    scope = (match["scope"] or "").strip()
    if scope.startswith("category="):
        fields["category"] = scope.removeprefix("category=").strip()
    elif scope:
        fields["endpoint"] = scope.removeprefix("endpoint=").strip()
    levels = [part.strip() for part in match["levels"].split(",") if part.strip()]
    if len(levels) == 1 and "=" not in levels[0]:
        fields["fail"] = levels[0]
        return fields
    for part in levels:
        name, _, level = part.partition("=")
        if name.strip() not in ("warn", "fail") or not level.strip():
            raise BudgetError(f"--budget {text!r}: levels are FAIL or warn=W,fail=F; got {part!r}")
        fields[name.strip()] = level.strip()
    return fields


def parse_cli_budget(text: str) -> Budget:
    """A ``--budget`` argument as a Budget, or BudgetError naming the problem."""
    fields = _cli_fields(text)
    try:
        return Budget.model_validate(fields)
    except ValidationError as exc:
        problems = validation_problems(exc, fields, Budget)
        detail = "; ".join(f"{format_loc(loc)}: {message}" for loc, message in problems)
        raise BudgetError(f"--budget {text!r}: {detail}") from exc


def spec_from_mapping(data: object, source: str) -> GateSpec:
    """Validate a ``gate:`` mapping read from JSON (a manifest's scenario); no line numbers."""
    data = {} if data is None else data
    try:
        return GateSpec.model_validate(data)
    except ValidationError as exc:
        mapping = data if isinstance(data, dict) else {}
        problems = validation_problems(exc, mapping, GateSpec)
        raise ScenarioInvalid(
            source, [f"{format_loc(('gate', *loc))}: {message}" for loc, message in problems]
        ) from exc


def load_gate_spec(path: Path) -> GateSpec:
    """The ``gate:`` block of a scenario file, problems reported with their line numbers."""
    document = parse_document(read_text(path), str(path), os.environ)
    raw = document.data.get("gate")
    found: list[Problem] = []
    spec: GateSpec | None = None
    try:
        spec = GateSpec.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        mapping = raw if isinstance(raw, dict) else {}
        found = [(("gate", *loc), msg) for loc, msg in validation_problems(exc, mapping, GateSpec)]
    problems = document.format(found)
    if problems or spec is None:
        raise ScenarioInvalid(str(path), problems)
    return spec
