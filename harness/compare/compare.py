"""Compare runs: a reference (A) against one or more others (B, C, ...), per endpoint and category.

For every metric (cost per call full and direct, p50/p95/p99 latency, error rate, throughput),
overall and per endpoint, and for the cost per call of each cost category, a row gives A, B,
the absolute and relative change and their intervals (:class:`harness.compare.stats.Contrast`:
bootstrap over the time windows of both runs, resampled independently). A row's verdict is
``worse`` or ``better`` when the interval of the relative change excludes 0 and the change is
at least ``min_effect`` (2 % by default), ``same`` otherwise, ``n/a`` without an interval.
Overall rows are at A's traffic mix (see :mod:`harness.compare.stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.compare.baselines import Source
from harness.compare.stats import OVERALL, Contrast, Estimate, Scope, Side, pool
from harness.compare.windows import Pricing
from harness.scenario.budgets import LOWER_IS_WORSE

METRICS = ("cost_per_call", "direct_cost_per_call", "p50_ms", "p95_ms", "p99_ms",
           "error_rate", "throughput")  # fmt: skip
Verdict = Literal["worse", "better", "same", "n/a"]
MIN_EFFECT = 0.02


@dataclass(frozen=True)
class SideInfo:
    """What one side of a comparison is made of."""

    label: str
    path: str
    kind: str
    scenario: str
    run_ids: tuple[str, ...]
    statuses: tuple[str, ...]
    requests: int
    windows: int
    seconds: float


@dataclass(frozen=True)
class Row:
    estimate: Estimate
    verdict: Verdict


@dataclass(frozen=True)
class Comparison:
    """One other side against the reference."""

    other: SideInfo
    rows: tuple[Row, ...]
    notes: tuple[str, ...]

    def rows_for(self, kind: str) -> list[Row]:
        return [r for r in self.rows if r.estimate.scope.kind == kind]


@dataclass(frozen=True)
class CompareReport:
    reference: SideInfo
    comparisons: tuple[Comparison, ...]
    pricing: Pricing
    confidence: float
    min_effect: float
    mix: dict[str, float]


def judge(estimate: Estimate, min_effect: float = MIN_EFFECT) -> Verdict:
    """worse / better when the change is significant and at least ``min_effect``."""
    point, ci = estimate.rel, estimate.rel_ci
    if point is None or ci is None:
        return "n/a"
    if not (ci[0] > 0 or ci[1] < 0) or abs(point) < min_effect:
        return "same"
    higher_is_worse = estimate.metric not in LOWER_IS_WORSE
    return "worse" if (point > 0) == higher_is_worse else "better"


def side_info(source: Source) -> SideInfo:
    return SideInfo(
        label=source.label,
        path=str(source.path),
        kind=source.kind,
        scenario=source.manifest.scenario_name,
        run_ids=tuple(r.run_id for r in source.runs),
        statuses=source.statuses,
        requests=int(sum(r.calls.sum() for r in source.runs)),
        windows=sum(r.n_windows for r in source.runs),
        seconds=float(sum(r.seconds.sum() for r in source.runs)),
    )


def _scopes(base: Side, new: Side) -> list[Scope]:
    endpoints = list(base.data.endpoints)
    endpoints += [e for e in new.data.endpoints if e not in endpoints]
    categories = sorted({*base.data.categories, *new.data.categories})
    return ([OVERALL] + [Scope("endpoint", e) for e in endpoints]
            + [Scope("category", c) for c in categories])  # fmt: skip


def _notes(base: Side, new: Side, a: SideInfo, b: SideInfo) -> list[str]:
    notes = []
    only_a = [e for e in base.data.endpoints if e not in new.data.endpoints]
    only_b = [e for e in new.data.endpoints if e not in base.data.endpoints]
    if only_a:
        notes.append(f"only in {a.label}: {', '.join(only_a)} (left out of overall figures)")
    if only_b:
        notes.append(f"only in {b.label}: {', '.join(only_b)} (left out of overall figures)")
    for info in (a, b):
        bad = [s for s in info.statuses if s != "completed"]
        if bad:
            notes.append(f"{info.label}: run status {', '.join(bad)}; its numbers may be partial")
    if a.scenario != b.scenario:
        notes.append(f"different scenarios: {a.scenario} vs {b.scenario}")
    return notes


def compare_sides(base: Side, new: Side, a: SideInfo, b: SideInfo, confidence: float,
                  min_effect: float) -> Comparison:  # fmt: skip
    contrast = Contrast(base, new, confidence)
    rows = []
    for scope in _scopes(base, new):
        metrics = ("cost_per_call",) if scope.kind == "category" else METRICS
        for metric in metrics:
            estimate = contrast.estimate(metric, scope)
            rows.append(Row(estimate, judge(estimate, min_effect)))
    return Comparison(b, tuple(rows), tuple(_notes(base, new, a, b)))


def compare_sources(sources: Sequence[Source], confidence: float = 0.95,
                    min_effect: float = MIN_EFFECT) -> CompareReport:  # fmt: skip
    """The first source against each of the others (at least two sources)."""
    sides = [Side(pool(s.runs), seed=i) for i, s in enumerate(sources)]
    infos = [side_info(s) for s in sources]
    comparisons = tuple(
        compare_sides(sides[0], side, infos[0], info, confidence, min_effect)
        for side, info in zip(sides[1:], infos[1:], strict=True)
    )
    return CompareReport(infos[0], comparisons, sources[0].pricing, confidence, min_effect,
                         sides[0].mix())  # fmt: skip


def estimate_json(estimate: Estimate) -> dict[str, Any]:
    ci = {k: list(v) if v is not None else None
          for k, v in (("new_ci", estimate.new_ci), ("delta_ci", estimate.delta_ci),
                       ("rel_ci", estimate.rel_ci))}  # fmt: skip
    return {
        "metric": estimate.metric,
        "scope": estimate.scope.kind,
        "name": estimate.scope.name,
        "base": estimate.base,
        "new": estimate.new,
        "delta": estimate.delta,
        "rel": estimate.rel,
        **ci,
    }


def _side_json(info: SideInfo) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in info.__dict__.items()}


def compare_json(report: CompareReport) -> dict[str, Any]:
    """``compare.json`` (values in the price book's currency, ms, fractions and req/s)."""
    return {
        "format": "cost-harness-compare/1",
        "confidence": report.confidence,
        "min_effect": report.min_effect,
        "price_book": report.pricing.price_book,
        "billing_model": report.pricing.billing_model,
        "currency": report.pricing.currency,
        "mix": report.mix,
        "reference": _side_json(report.reference),
        "comparisons": [
            {
                "other": _side_json(c.other),
                "notes": list(c.notes),
                "rows": [estimate_json(r.estimate) | {"verdict": r.verdict} for r in c.rows],
            }
            for c in report.comparisons
        ],
    }


def default_output(run_dirs: Sequence[Path]) -> Path:
    """``compare.html`` next to the last run."""
    return Path(run_dirs[-1]) / "compare.html"
