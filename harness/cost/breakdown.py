"""Costs per request aggregate: the ledger's allocations laid back onto the request quantities.

Every allocation is linear in one request column (its weight), so the full and direct cost of
any slice of requests (endpoint, tenant, phase, second) is Σ weight x cost / Σ weight over the
allocation's requests. ``request_costs`` adds ``full_cost`` and ``direct_cost`` columns to the
aggregated request quantities; grouping them answers every "cost per call by ..." question.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.cost.ledger import Ledger


def request_costs(ledger: Ledger) -> pd.DataFrame:
    """``ledger.inputs.requests`` plus ``full_cost`` and ``direct_cost`` per row."""
    frame = ledger.inputs.requests
    full = np.zeros(len(frame))
    direct = np.zeros(len(frame))
    for alloc in ledger.allocations:
        if alloc.total_weight <= 0:
            continue
        mask = alloc.mask(frame).to_numpy()
        weight = frame[alloc.weight].to_numpy(float)[mask]
        full[mask] += weight * (alloc.cost / alloc.total_weight)
        direct[mask] += weight * (alloc.attributed / alloc.total_weight)
    return frame.assign(full_cost=full, direct_cost=direct)


def per_call(cost: float, calls: float) -> float | None:
    """Cost per call, or None when there were no calls."""
    return cost / calls if calls > 0 else None
