"""Metrics of pooled run windows and their bootstrap distributions.

A :class:`Side` pools the windows of one or more runs. Its bootstrap draws RESAMPLES multisets
of windows (multinomial counts, seeded): with one run, windows are drawn with replacement; with
several runs, runs are drawn first and then windows within each drawn run (a two-level
bootstrap, so disagreement between repeated runs widens the interval). Every metric is a ratio
of window sums computed on each draw, so one draw matrix serves every endpoint and metric.

Overall figures (cost per call, latency percentiles, error rate) weigh each endpoint by a
fixed *mix* — the reference side's share of calls — so a random difference in the traffic mix
between two runs is not read as a change in cost per call. Throughput is not mix-weighted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from harness.compare.windows import N_BINS, RunWindows, bin_to_ms
from harness.cost.bootstrap import RESAMPLES, SEED

ScopeKind = Literal["overall", "endpoint", "category"]
PERCENTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    name: str | None = None

    def __str__(self) -> str:
        return "overall" if self.name is None else self.name


OVERALL = Scope("overall")


@dataclass(frozen=True)
class Pool:
    """Windows of several runs aligned on one endpoint and category list."""

    run_ids: tuple[str, ...]
    blocks: tuple[int, ...]  # windows per run, in order
    endpoints: tuple[str, ...]
    categories: tuple[str, ...]
    seconds: np.ndarray  # (W,)
    calls: np.ndarray  # (W, E)
    errors: np.ndarray  # (W, E)
    cost: np.ndarray  # (W, E, C)
    latency: np.ndarray  # (W, E, B) bins [offset, offset + B)
    offset: int


def _align(
    values: np.ndarray, names: Sequence[str], target: Sequence[str], axis: int
) -> np.ndarray:
    shape = list(values.shape)
    shape[axis] = len(target)
    out = np.zeros(shape)
    index = [target.index(n) for n in names]
    slicer: list[slice | list[int]] = [slice(None)] * values.ndim
    slicer[axis] = index
    out[tuple(slicer)] = values
    return out


def pool(runs: Sequence[RunWindows]) -> Pool:
    """Stack the windows of ``runs`` (endpoints ordered by total calls, categories by name)."""
    calls: dict[str, float] = {}
    for run in runs:
        for name, total in zip(run.endpoints, run.calls.sum(axis=0), strict=True):
            calls[name] = calls.get(name, 0.0) + float(total)
    endpoints = sorted(calls, key=lambda n: -calls[n])
    categories = sorted({c for run in runs for c in run.categories})
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("calls", "errors", "cost", "lat")}
    for run in runs:
        parts["calls"].append(_align(run.calls, run.endpoints, endpoints, 1))
        parts["errors"].append(_align(run.errors, run.endpoints, endpoints, 1))
        cost = _align(run.cost, run.endpoints, endpoints, 1)
        parts["cost"].append(_align(cost, run.categories, categories, 2))
        parts["lat"].append(_align(run.latency, run.endpoints, endpoints, 1))
    latency = np.concatenate(parts["lat"]) if runs else np.zeros((0, 0, N_BINS))
    used = np.flatnonzero(latency.sum(axis=(0, 1)))
    lo, hi = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 0)
    return Pool(
        run_ids=tuple(r.run_id for r in runs),
        blocks=tuple(r.n_windows for r in runs),
        endpoints=tuple(endpoints),
        categories=tuple(categories),
        seconds=np.concatenate([r.seconds for r in runs]) if runs else np.zeros(0),
        calls=np.concatenate(parts["calls"]) if runs else np.zeros((0, 0)),
        errors=np.concatenate(parts["errors"]) if runs else np.zeros((0, 0)),
        cost=np.concatenate(parts["cost"]) if runs else np.zeros((0, 0, 0)),
        latency=latency[:, :, lo:hi],
        offset=lo,
    )


def resample_counts(blocks: Sequence[int], resamples: int, seed: Sequence[int]) -> np.ndarray:
    """(resamples x Σblocks) window counts: one- or two-level bootstrap (see module doc)."""
    rng = np.random.default_rng([SEED, *seed])
    if len(blocks) == 1:
        n = blocks[0]
        return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)
    picked = rng.multinomial(len(blocks), np.full(len(blocks), 1.0 / len(blocks)), size=resamples)
    parts = [
        rng.multinomial(picked[:, i] * n, np.full(n, 1.0 / n)).astype(float)
        for i, n in enumerate(blocks)
    ]
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class Sums:
    """Window sums under some weighting (one row per draw; the point estimate is one row)."""

    seconds: np.ndarray  # (R,)
    calls: np.ndarray  # (R, E)
    errors: np.ndarray  # (R, E)
    cost: np.ndarray  # (R, E, C)
    latency: np.ndarray  # (R, E, B)

    @classmethod
    def of(cls, data: Pool, weights: np.ndarray) -> Sums:
        def total(values: np.ndarray) -> np.ndarray:
            flat = weights @ values.reshape(values.shape[0], -1)
            out: np.ndarray = flat.reshape((weights.shape[0], *values.shape[1:]))
            return out

        return cls(total(data.seconds), total(data.calls), total(data.errors),
                   total(data.cost), total(data.latency))  # fmt: skip


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _mixed(per_endpoint: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """Σ mix x value over the endpoints with a value in each row, mix renormalized per row."""
    valid = ~np.isnan(per_endpoint)
    weight = np.where(valid, mix, 0.0)
    total = weight.sum(axis=1)
    out = np.where(valid, per_endpoint, 0.0) * weight
    return _divide(out.sum(axis=1), total)


def percentile(hist: np.ndarray, q: float, offset: int) -> np.ndarray:
    """Per row of (R x B) bin counts: the q-quantile in ms (nan for an empty row)."""
    total = hist.sum(axis=1)
    if hist.shape[1] == 0:
        return np.full(hist.shape[0], np.nan)
    cum = np.cumsum(hist, axis=1)
    target = q * total
    index = np.argmax(cum >= target[:, None] - 1e-9 * total[:, None], axis=1)
    rows = np.arange(hist.shape[0])
    before = np.where(index > 0, cum[rows, np.maximum(index - 1, 0)], 0.0)
    inside = hist[rows, index]
    fraction = np.clip(_divide(target - before, inside), 0.0, 1.0)
    value = bin_to_ms(offset + index + np.nan_to_num(fraction))
    return np.where(total > 0, value, np.nan)


@dataclass
class Side:
    """One side of a comparison: pooled windows, their point sums and bootstrap sums."""

    data: Pool
    seed: int
    resamples: int = RESAMPLES
    point: Sums = field(init=False)
    draws: Sums = field(init=False)

    def __post_init__(self) -> None:
        self.point = Sums.of(self.data, np.ones((1, len(self.data.seconds))))
        if len(self.data.seconds) >= 2:
            counts = resample_counts(self.data.blocks, self.resamples, (self.seed,))
        else:  # one window cannot be resampled: no interval
            counts = np.full((self.resamples, len(self.data.seconds)), np.nan)
        self.draws = Sums.of(self.data, counts)

    def mix(self) -> dict[str, float]:
        """This side's share of calls per endpoint."""
        calls = self.point.calls[0]
        total = float(calls.sum())
        return {e: float(c) / total for e, c in zip(self.data.endpoints, calls, strict=True)
                if total > 0}  # fmt: skip

    def has(self, scope: Scope) -> bool:
        """Whether the scope exists here (a category a run never charged costs 0)."""
        return scope.kind != "endpoint" or scope.name in self.data.endpoints

    def value(
        self, metric: str, scope: Scope, mix: Mapping[str, float]
    ) -> tuple[float, np.ndarray]:
        """(point estimate, bootstrap draws) of ``metric`` for ``scope`` (nan when undefined)."""
        weights = np.array([mix.get(e, 0.0) for e in self.data.endpoints])
        point = _metric(self.point, self.data, metric, scope, weights)
        return float(point[0]), _metric(self.draws, self.data, metric, scope, weights)


def _metric(sums: Sums, data: Pool, metric: str, scope: Scope, mix: np.ndarray) -> np.ndarray:
    column = data.endpoints.index(str(scope.name)) if scope.kind == "endpoint" else None
    if metric == "throughput":
        calls = sums.calls.sum(axis=1) if column is None else sums.calls[:, column]
        return _divide(calls, sums.seconds)
    if metric in PERCENTILES:
        hist = _mixed_histogram(sums.latency, mix) if column is None else sums.latency[:, column]
        return percentile(hist, PERCENTILES[metric], data.offset)
    rates = _rates(sums, data, metric, scope)
    return _mixed(rates, mix) if column is None else rates[:, column]


def _mixed_histogram(latency: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """(R x B): each endpoint's latency distribution weighted by the mix."""
    calls = latency.sum(axis=2)
    weight = np.where(calls > 0, mix, 0.0)
    weight = _divide(weight, weight.sum(axis=1, keepdims=True))
    scaled = np.nan_to_num(_divide(weight, calls))
    out: np.ndarray = np.einsum("re,reb->rb", scaled, latency)
    return out


def _rates(sums: Sums, data: Pool, metric: str, scope: Scope) -> np.ndarray:
    """(R x E) per-endpoint error rate or cost per call (of one category, or direct)."""
    if metric == "error_rate":
        return _divide(sums.errors, sums.calls)
    if scope.kind == "category":
        if scope.name not in data.categories:
            return _divide(np.zeros_like(sums.calls), sums.calls)
        return _divide(sums.cost[:, :, data.categories.index(str(scope.name))], sums.calls)
    cost = sums.cost
    if metric == "direct_cost_per_call" and "unattributed" in data.categories:
        cost = np.delete(cost, data.categories.index("unattributed"), axis=2)
    return _divide(cost.sum(axis=2), sums.calls)


Interval = tuple[float, float]


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def interval(draws: np.ndarray, confidence: float) -> Interval | None:
    """The central ``confidence`` interval of bootstrap draws (None when too few are defined)."""
    values = draws[~np.isnan(draws)]
    if len(values) < max(2, len(draws) // 2):
        return None
    tail = (1.0 - confidence) / 2.0
    method: Literal["inverted_cdf", "linear"] = (
        "inverted_cdf" if np.isinf(values).any() else "linear"  # no inf - inf interpolation
    )
    lo, hi = np.quantile(values, [tail, 1.0 - tail], method=method)
    return float(lo), float(hi)


def relative(new: np.ndarray, base: np.ndarray) -> np.ndarray:
    """new / base - 1; 0 when both are 0, +inf when only the base is 0."""
    out: np.ndarray = np.full(np.broadcast(new, base).shape, np.nan)
    np.divide(new, base, out=out, where=base != 0)
    out -= 1.0
    zero = base == 0
    out[zero & (new == 0)] = 0.0
    out[zero & (new > 0)] = np.inf
    return out


@dataclass(frozen=True)
class Estimate:
    """A metric of the base and new side and the change, with bootstrap intervals."""

    metric: str
    scope: Scope
    base: float | None
    new: float | None
    new_ci: Interval | None
    delta: float | None = None  # new - base
    delta_ci: Interval | None = None
    rel: float | None = None  # new / base - 1
    rel_ci: Interval | None = None


class Contrast:
    """Estimates of a new side against a base side (or of the new side alone).

    Both sides are resampled independently (different seeds); a change's interval is that of
    the change computed draw by draw. Overall figures use the base side's traffic mix over
    the endpoints both sides have (the new side's own mix without a base).
    """

    def __init__(self, base: Side | None, new: Side, confidence: float) -> None:
        self.base = base
        self.new = new
        self.confidence = confidence
        mix = (base or new).mix()
        self.mix = {e: w for e, w in mix.items() if new.has(Scope("endpoint", e))}

    def estimate(self, metric: str, scope: Scope) -> Estimate:
        point, draws = self.new.value(metric, scope, self.mix)
        new = _number(point) if self.new.has(scope) else None
        new_ci = interval(draws, self.confidence) if new is not None else None
        if self.base is None or not self.base.has(scope) or new is None:
            base = None
            if self.base is not None and self.base.has(scope):
                base = _number(self.base.value(metric, scope, self.mix)[0])
            return Estimate(metric, scope, base, new, new_ci)
        base_point, base_draws = self.base.value(metric, scope, self.mix)
        if np.isnan(base_point):
            return Estimate(metric, scope, None, new, new_ci)
        rel = relative(np.array([point]), np.array([base_point]))[0]
        return Estimate(
            metric, scope, float(base_point), new, new_ci,
            delta=point - base_point,
            delta_ci=interval(draws - base_draws, self.confidence),
            rel=float(rel),
            rel_ci=interval(relative(draws, base_draws), self.confidence),
        )  # fmt: skip
