"""95 % confidence intervals of cost per call: a seeded bootstrap over time windows.

Windows (1 s, or 5 s when a run has more than MAX_WINDOWS seconds) are resampled with
replacement RESAMPLES times; each resample's cost per call is Σ cost / Σ calls of the windows
drawn (a ratio estimator, so busy windows weigh more). Resampling is done by multinomial counts
(resamples x windows) multiplied into the (windows x columns) sums, so many columns (endpoints)
are bootstrapped together with the same draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RESAMPLES = 1000
SEED = 20_260_527
MAX_WINDOWS = 3600


def window_seconds(n_seconds: int) -> int:
    return 1 if n_seconds <= MAX_WINDOWS else 5


def ratio_ci(cost: np.ndarray, calls: np.ndarray) -> list[tuple[float, float] | None]:
    """Per column of (windows x columns) ``cost`` and ``calls``: the 95 % interval, or None."""
    n_windows = cost.shape[0]
    columns = cost.shape[1] if cost.ndim == 2 else 0
    if n_windows < 2:
        return [None] * columns
    rng = np.random.default_rng(SEED)
    counts = rng.multinomial(n_windows, np.full(n_windows, 1.0 / n_windows), size=RESAMPLES)
    cost_draws = counts @ cost
    call_draws = counts @ calls
    ratios = np.divide(
        cost_draws, call_draws, out=np.full(cost_draws.shape, np.nan), where=call_draws > 0
    )
    out: list[tuple[float, float] | None] = []
    for column in range(columns):
        values = ratios[:, column]
        values = values[~np.isnan(values)]
        if len(values) < RESAMPLES // 2:
            out.append(None)
        else:
            lo, hi = np.percentile(values, [2.5, 97.5])
            out.append((float(lo), float(hi)))
    return out


def windowed(costs: pd.DataFrame, by: str | None) -> tuple[list[object], np.ndarray, np.ndarray]:
    """(column labels, cost matrix, calls matrix) of ``costs`` per window (and per ``by``)."""
    if not len(costs):
        return [], np.zeros((0, 0)), np.zeros((0, 0))
    span = int(costs["sec"].max() - costs["sec"].min()) + 1
    window = costs["sec"] // window_seconds(span)
    keys = [window] if by is None else [window, costs[by].astype(object)]
    sums = costs.groupby(keys, sort=True)[["full_cost", "calls"]].sum()
    if by is None:
        return [None], sums[["full_cost"]].to_numpy(), sums[["calls"]].to_numpy()
    cost = sums["full_cost"].unstack(fill_value=0)
    calls = sums["calls"].unstack(fill_value=0)
    return list(cost.columns), cost.to_numpy(), calls.to_numpy()


def ci_by(costs: pd.DataFrame, by: str | None) -> dict[object, tuple[float, float] | None]:
    """95 % interval of full cost per call, overall (``by=None``) or per value of ``by``."""
    labels, cost, calls = windowed(costs, by)
    return dict(zip(labels, ratio_ci(cost, calls), strict=True)) if labels else {}
