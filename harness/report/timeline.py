"""The run second by second, for the report's charts (aggregates only, never one row per request).

Columns: ``t`` (seconds since the run started), ``phase``, ``rps``, ``p95_ms``, ``error_rate``
(all requests, priced or not), ``replicas`` (alive replicas of billed services, averaged over
the second), ``burn_usd_per_hour`` (cost incurred in that second x 3600: metered charges where
the usage samples put them, request-driven charges where the requests started) and
``cost_per_call_usd`` (that second's cost / its calls). Cost columns are NaN outside priced
phases. Summed over seconds, burn / 3600 equals the ledger total.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.artifacts.rundata import RunData
from harness.cost.ledger import Ledger

COLUMNS = ("t", "phase", "rps", "p95_ms", "error_rate", "replicas", "cost_per_call_usd",
           "burn_usd_per_hour")  # fmt: skip


def _length(run: RunData, ledger: Ledger) -> int:
    t0 = run.manifest.started_at
    ends = [run.manifest.ended_at or t0, *((w.end or w.start) for w in run.priced_windows)]
    if len(run.requests):
        ends.append(float(run.requests["start"].max()))
    seconds = ledger.inputs.requests["sec"]
    last = int(seconds.max()) + 1 if len(seconds) else 0
    return max(math.ceil(max(ends) - t0), last, 0)


def _cost_per_second(ledger: Ledger, n: int) -> np.ndarray:
    cost = np.zeros(n)
    metered = ledger.inputs.metering.seconds
    requests = ledger.inputs.requests
    for alloc in ledger.allocations:
        charge = alloc.charge
        if charge.driver == "time":
            rows = metered[
                (metered["service"] == charge.service) & (metered["phase"] == charge.phase)
            ]
            total = float(rows[charge.basis].sum())
        else:
            rows = requests[(requests["phase"] == charge.phase)]
            if charge.recv is not None:
                rows = rows[rows["service"] == charge.recv]
            total = float(rows[charge.basis].sum())
        if total > 0:
            seconds = np.clip(rows["sec"].to_numpy(np.int64), 0, n - 1)
            np.add.at(cost, seconds, rows[charge.basis].to_numpy(float) * (charge.cost / total))
    return cost


def _priced_mask(run: RunData, n: int) -> np.ndarray:
    t = run.manifest.started_at + np.arange(n)
    mask = np.zeros(n, dtype=bool)
    for w in run.priced_windows:
        mask |= (t + 1 > w.start) & (t < (w.end or w.start))
    return mask


def _phase_labels(run: RunData, n: int) -> list[str | None]:
    mid = run.manifest.started_at + np.arange(n) + 0.5
    labels: list[str | None] = [None] * n
    for phase in run.manifest.phases or run.priced_windows:
        end = phase.end if phase.end is not None else math.inf
        for i in np.flatnonzero((mid >= phase.start) & (mid < end)):
            labels[i] = phase.name
    return labels


def _traffic(run: RunData, n: int) -> pd.DataFrame:
    requests = run.requests
    sec = np.clip(np.floor(requests["start"].to_numpy(float) - run.manifest.started_at), 0, n - 1)
    grouped = requests.assign(sec=sec.astype(np.int64), failed=requests["error"].notna()).groupby(
        "sec"
    )
    stats = pd.DataFrame(
        {
            "rps": grouped.size(),
            "p95_ms": grouped["latency_ms"].quantile(0.95),
            "error_rate": grouped["failed"].mean(),
        }
    )
    return stats.reindex(range(n)).fillna({"rps": 0})


def _replicas(run: RunData, ledger: Ledger, n: int) -> np.ndarray:
    usage = run.usage
    billed = [name for name, spec in ledger.inputs.services.items() if spec.billed]
    alive = usage[usage["alive"] & usage["service"].isin(billed)]
    sec = np.floor(alive["ts"].to_numpy(float) - run.manifest.started_at).astype(np.int64)
    inside = (sec >= 0) & (sec < n)
    frame = pd.DataFrame(
        {"sec": sec[inside], "replica": alive["replica"].astype(object).to_numpy()[inside]}
    )
    per_second = frame.groupby("sec")["replica"].nunique()
    # Samples come about once a second, not exactly: a second without one keeps the last count.
    return per_second.reindex(range(n)).ffill().fillna(0).to_numpy(float)


def build_timeline(run: RunData, ledger: Ledger) -> pd.DataFrame:
    """One row per second of the run (see the module docstring)."""
    n = _length(run, ledger)
    traffic = _traffic(run, n) if n else pd.DataFrame(columns=["rps", "p95_ms", "error_rate"])
    cost = _cost_per_second(ledger, n)
    priced = _priced_mask(run, n)
    rps = traffic["rps"].to_numpy(float)
    per_call = np.divide(cost, rps, out=np.full(n, np.nan), where=rps > 0)
    timeline = pd.DataFrame(
        {
            "t": np.arange(n, dtype=np.int64),
            "phase": _phase_labels(run, n),
            "rps": rps,
            "p95_ms": traffic["p95_ms"].to_numpy(float),
            "error_rate": traffic["error_rate"].to_numpy(float),
            "replicas": _replicas(run, ledger, n),
            "cost_per_call_usd": np.where(priced, per_call, np.nan),
            "burn_usd_per_hour": np.where(priced, cost * 3600.0, np.nan),
        }
    )
    return timeline[list(COLUMNS)]
