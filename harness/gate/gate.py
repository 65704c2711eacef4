"""The CI performance-cost gate: budgets checked against a baseline, noise-aware verdicts.

Each budget (expanded per endpoint for ``endpoint: "*"``) becomes a :class:`Check`. Its level
is compared with the matching statistic — the relative change, the absolute change, or the
candidate's own value for a limit — and that statistic's bootstrap interval (see
:mod:`harness.compare.stats`). With the interval [lo, hi] read in the "worse" direction:

* ``fail``         lo is above the fail level: over budget, and noise cannot explain it;
* ``inconclusive`` the interval contains the fail level: this run cannot tell (also when no
                   interval exists and the estimate is over the fail level);
* ``warn``         the estimate is above the warn level;
* ``pass``         otherwise;
* ``error``        the budget cannot be checked (an endpoint the runs lack, no baseline).

Exit code: 1 if any check failed (or was inconclusive, with ``inconclusive: fail``), else 2 if
any check is an error, else 0 — warnings and inconclusive checks pass.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.artifacts import MANIFEST, read_manifest
from harness.compare import SideInfo, side_info
from harness.compare.baselines import BASELINES_DIR, BaselineError, Source, load_sources, resolve
from harness.compare.stats import OVERALL, Contrast, Estimate, Interval, Scope, Side, pool
from harness.compare.windows import Pricing
from harness.errors import EXIT_GATE_FAILED, EXIT_INPUT, EXIT_OK, RunFailed
from harness.scenario.budgets import (
    LOWER_IS_WORSE,
    Budget,
    GateSpec,
    Threshold,
    effective_budgets,
    spec_from_mapping,
)

Verdict = Literal["pass", "warn", "inconclusive", "fail", "error"]
SEVERITY: dict[str, int] = {"pass": 0, "warn": 1, "inconclusive": 2, "error": 3, "fail": 4}


class CandidateFailed(RunFailed):
    """The candidate run did not complete, so there is nothing sound to gate."""


@dataclass(frozen=True)
class Margin:
    """How far a statistic is beyond one level, in the worse direction (> 0: over)."""

    level: Threshold
    point: float
    ci: Interval | None


@dataclass(frozen=True)
class Check:
    """One budget on one scope, with its numbers and verdict."""

    budget: Budget
    scope: Scope
    estimate: Estimate | None
    verdict: Verdict
    reason: str

    @property
    def label(self) -> str:
        if self.scope.kind == "endpoint":
            return f"{self.budget.metric}[{self.scope.name}]"
        return self.budget.label


@dataclass(frozen=True)
class GateResult:
    checks: tuple[Check, ...]
    baseline: SideInfo | None
    candidate: SideInfo
    pricing: Pricing
    confidence: float
    inconclusive_fails: bool
    notes: tuple[str, ...]

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.checks)

    @property
    def verdict(self) -> Literal["pass", "warn", "fail", "error"]:
        """The worst outcome; no check at all (e.g. ``*`` over no common endpoint) is an error."""
        if not self.checks:
            return "error"
        if self.count("fail") or (self.inconclusive_fails and self.count("inconclusive")):
            return "fail"
        if self.count("error"):
            return "error"
        return "warn" if self.count("warn") or self.count("inconclusive") else "pass"

    @property
    def exit_code(self) -> int:
        return {"fail": EXIT_GATE_FAILED, "error": EXIT_INPUT}.get(self.verdict, EXIT_OK)


def _statistic(level: Threshold, est: Estimate) -> tuple[float | None, Interval | None]:
    if level.kind == "relative":
        return est.rel, est.rel_ci
    if level.kind == "delta":
        return est.delta, est.delta_ci
    return est.new, est.new_ci


def margin(level: Threshold, est: Estimate) -> Margin | None:
    """The margin of ``est`` over ``level`` (None when the statistic is undefined)."""
    point, ci = _statistic(level, est)
    if point is None:
        return None
    if est.metric in LOWER_IS_WORSE:
        flipped = None if ci is None else (level.value - ci[1], level.value - ci[0])
        return Margin(level, level.value - point, flipped)
    shifted = None if ci is None else (ci[0] - level.value, ci[1] - level.value)
    return Margin(level, point - level.value, shifted)


def decide(fail: Margin | None, warn: Margin | None, confidence: float) -> tuple[Verdict, str]:
    """The verdict of one check from its margins (see the module docstring)."""
    share = f"{confidence * 100:g} %"
    if fail is not None:
        if fail.ci is not None and fail.ci[0] > 0:
            return "fail", f"over the fail level {fail.level}: the whole {share} CI is above it"
        if fail.ci is not None and fail.ci[1] > 0:
            return ("inconclusive",
                    f"the {share} CI contains the fail level {fail.level}: this run cannot tell")
        if fail.ci is None and fail.point > 0:
            return "inconclusive", f"over the fail level {fail.level}, but without an interval"
    if warn is not None and warn.point > 0:
        return "warn", f"the estimate is over the warn level {warn.level}"
    return "pass", "within budget"


def _missing(budget: Budget, scope: Scope, where: str, known: Sequence[str]) -> Check:
    close = difflib.get_close_matches(str(scope.name), list(known), n=1)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    reason = f"endpoint {scope.name!r} has no calls in the {where}{hint}"
    return Check(budget, scope, None, "error", reason)


def check(budget: Budget, scope: Scope, contrast: Contrast) -> Check:
    """Evaluate one budget on one scope."""
    if contrast.base is None and budget.needs_baseline:
        reason = "a change budget needs a baseline (--baseline or gate.baseline)"
        return Check(budget, scope, None, "error", reason)
    sides = [(contrast.new, "candidate")]
    if contrast.base is not None and budget.needs_baseline:
        sides.append((contrast.base, "baseline"))
    for side, where in sides:
        if not side.has(scope):
            return _missing(budget, scope, where, side.data.endpoints)
    est = contrast.estimate(budget.metric, scope)
    levels = {name: budget.level(name) for name in ("fail", "warn")}
    margins = {n: margin(lv, est) if lv is not None else None for n, lv in levels.items()}
    for name, level in levels.items():
        if level is not None and margins[name] is None:
            reason = f"{budget.metric} is undefined here (no calls, or a zero baseline)"
            return Check(budget, scope, est, "error", reason)
    verdict, reason = decide(margins["fail"], margins["warn"], contrast.confidence)
    return Check(budget, scope, est, verdict, reason)


def _scopes(budget: Budget, contrast: Contrast) -> list[Scope]:
    if budget.category is not None:
        return [Scope("category", budget.category)]
    if budget.endpoint is None:
        return [OVERALL]
    if budget.endpoint != "*":
        return [Scope("endpoint", budget.endpoint)]
    names = list(contrast.new.data.endpoints)
    if contrast.base is not None and budget.needs_baseline:
        names = [n for n in names if n in contrast.base.data.endpoints]
    return [Scope("endpoint", n) for n in names]


def evaluate(budgets: Sequence[Budget], contrast: Contrast) -> list[Check]:
    """Every check of ``budgets`` (``*`` budgets expand to the endpoints both sides have)."""
    return [check(b, scope, contrast) for b in budgets for scope in _scopes(b, contrast)]


def _paths(value: Path | str | Sequence[Path | str] | None) -> list[Path | str]:
    if value is None:
        return []
    return [value] if isinstance(value, str | Path) else list(value)


def _spec(scenario_gate: GateSpec | Mapping[str, Any] | None, candidate: Path) -> GateSpec:
    if isinstance(scenario_gate, GateSpec):
        return scenario_gate
    if scenario_gate is None:
        scenario_gate = read_manifest(candidate).scenario.get("gate") or {}
    return spec_from_mapping(dict(scenario_gate), f"{candidate / MANIFEST} (scenario gate block)")


def _check_statuses(baselines: Sequence[Source], candidates: Sequence[Source]) -> None:
    for source in candidates:
        if any(s != "completed" for s in source.statuses):
            raise CandidateFailed(f"candidate {source.path}: run status "
                                  f"{', '.join(source.statuses)}; the gate needs a completed run")
    for source in baselines:
        if any(s != "completed" for s in source.statuses):
            raise BaselineError(f"baseline {source.path}: run status "
                                f"{', '.join(source.statuses)}; choose a completed run")


def _merge_info(sources: Sequence[Source]) -> SideInfo:
    infos = [side_info(s) for s in sources]
    first = infos[0]
    if len(infos) == 1:
        return first
    return SideInfo(
        label=" + ".join(i.label for i in infos), path=", ".join(i.path for i in infos),
        kind=first.kind, scenario=first.scenario,
        run_ids=tuple(r for i in infos for r in i.run_ids),
        statuses=tuple(s for i in infos for s in i.statuses),
        requests=sum(i.requests for i in infos), windows=sum(i.windows for i in infos),
        seconds=sum(i.seconds for i in infos),
    )  # fmt: skip


def _contrast(baselines: Sequence[Source], candidates: Sequence[Source],
              confidence: float) -> Contrast:  # fmt: skip
    """Both sides pooled over their runs; no base side without baselines."""
    base = Side(pool([r for s in baselines for r in s.runs]), seed=0) if baselines else None
    new = Side(pool([r for s in candidates for r in s.runs]), seed=1)
    return Contrast(base, new, confidence)


def gate_run(
    candidate_dir: Path | str | Sequence[Path | str],
    baseline_dir: Path | str | Sequence[Path | str] | None,
    scenario_gate: GateSpec | Mapping[str, Any] | None = None,
    budgets: Sequence[Budget] = (),
    price_book: str | None = None,
    billing_model: str | None = None,
    fail_on_inconclusive: bool = False,
    baselines_root: Path = BASELINES_DIR,
) -> GateResult:
    """Gate one or more candidate runs against baselines (runs, stored baselines or names).

    ``scenario_gate`` defaults to the candidate manifest's ``gate`` block; ``budgets`` replace
    its budgets of the same metric and scope. ``baseline_dir`` defaults to the block's
    ``baseline``. Raises CandidateFailed (exit 3) when a candidate did not complete, and
    InputError subclasses for unusable input."""
    candidates_args = _paths(candidate_dir)
    if not candidates_args:
        raise BaselineError("no candidate run given")
    spec = _spec(scenario_gate, resolve(candidates_args[0], baselines_root))
    baseline_args = _paths(baseline_dir) or _paths(spec.baseline)
    sources = load_sources([*baseline_args, *candidates_args], price_book, billing_model,
                           baselines_root)  # fmt: skip
    baselines, candidates = sources[: len(baseline_args)], sources[len(baseline_args) :]
    _check_statuses(baselines, candidates)
    checks = evaluate(effective_budgets(spec, list(budgets)),
                      _contrast(baselines, candidates, spec.confidence))  # fmt: skip
    notes = []
    if not spec.budgets and not budgets:
        notes.append("no budgets given: the default budgets apply (cost per call overall and "
                     "per endpoint, warn +5 %, fail +10 %)")  # fmt: skip
    return GateResult(
        checks=tuple(checks),
        baseline=_merge_info(baselines) if baselines else None,
        candidate=_merge_info(candidates),
        pricing=sources[0].pricing,
        confidence=spec.confidence,
        inconclusive_fails=fail_on_inconclusive or spec.inconclusive == "fail",
        notes=tuple(notes),
    )
