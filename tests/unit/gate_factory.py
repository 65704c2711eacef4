"""Synthetic run windows with known cost per call, latency and noise (for gate/compare tests)."""

from __future__ import annotations

import numpy as np

from harness.gate_windows import N_BINS, RunWindows, latency_bins

CATEGORIES = ("compute", "egress", "unattributed")
SHARES = np.array([0.7, 0.2, 0.1])  # how each endpoint's cost splits over CATEGORIES


def windows(
    run_id: str,
    endpoints: dict[str, tuple[float, float]],
    n: int = 30,
    rate: float = 20.0,
    noise: float = 0.05,
    seed: int = 0,
    errors: float = 0.0,
) -> RunWindows:
    """``endpoints`` maps name -> (cost per call, median latency ms). Each 1-s window gets
    Poisson(rate) calls per endpoint, cost = calls x cost per call x (1 + noise x N(0, 1)),
    latencies lognormal around the median (sigma 0.3), Binomial(calls, errors) errors."""
    rng = np.random.default_rng(seed)
    names = tuple(endpoints)
    calls = rng.poisson(rate, size=(n, len(names))).astype(float)
    cost = np.zeros((n, len(names), len(CATEGORIES)))
    latency = np.zeros((n, len(names), N_BINS))
    for e, (per_call, median) in enumerate(endpoints.values()):
        factor = 1.0 + noise * rng.standard_normal(n)
        cost[:, e, :] = (calls[:, e] * per_call * factor)[:, None] * SHARES
        for w in range(n):
            sample = median * np.exp(0.3 * rng.standard_normal(int(calls[w, e])))
            np.add.at(latency[w, e], latency_bins(sample), 1.0)
    return RunWindows(
        run_id=run_id,
        endpoints=names,
        categories=CATEGORIES,
        seconds=np.ones(n),
        calls=calls,
        errors=rng.binomial(calls.astype(int), errors).astype(float),
        cost=cost,
        latency=latency,
    )
