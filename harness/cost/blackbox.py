"""Regression weights: per-endpoint CPU fitted from metered usage, for services that report
no CPU per request.

Run once per (receiving service, priced phase) whose requests carry no CPU telemetry: the
designed mix's windows (``manifest.traffic.design``) are cut from the run's artifacts, fitted
(``regression.py``), and a usable fit becomes three request columns, like the profile weight:
``regression_ms`` = calls x the endpoint's fitted CPU ms per call, and ``regression_lo_ms`` /
``regression_hi_ms`` the same with the ends of its 95 % interval, and ``regression_n`` the calls
they cover. The ledger splits the
metered CPU by ``regression_ms`` and carries the interval to every row it prices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from harness.artifacts import PhaseWindow
from harness.cost.regression import ServiceFit, fit_service
from harness.cost.windows import build_windows, count_calls, guard_of

REGRESSION_WEIGHT = "regression_ms"
LOW, HIGH = "regression_lo_ms", "regression_hi_ms"
FITTED_CALLS = "regression_n"  # calls whose endpoint has a fitted CPU per call
# Without a designed mix the fit is still tried, on windows this long (or 4 guards): the
# natural variation of a fixed mix rarely identifies it, and the fit then says so.
UNDESIGNED_WINDOW_S = 10.0

Fits = dict[tuple[str, str], ServiceFit]


def unmeasured(requests: pd.DataFrame) -> list[tuple[str, str]]:
    """(service, phase) pairs that received calls of which none reported CPU."""
    if not len(requests):
        return []
    sums = requests.groupby([requests["service"].astype(str), requests["phase"].astype(str)],
                            observed=True)[["calls", "cpu_ms_n"]].sum()
    rows = sums[(sums["calls"] > 0) & (sums["cpu_ms_n"] == 0)]
    return [(str(s), str(p)) for s, p in rows.index]


def _window(design: Mapping[str, Any], guard: float) -> tuple[float, float | None]:
    """(window length, designed windows from: None when no design played) for the run."""
    active = design.get("active_from")
    window = design.get("window_s")
    if active is None or not isinstance(window, int | float) or window <= 0:
        return max(UNDESIGNED_WINDOW_S, 4.0 * guard), None
    return float(window), float(active)


def fit_run(batches: Iterable[pd.DataFrame], usage: pd.DataFrame,
            windows: tuple[PhaseWindow, ...], design: Mapping[str, Any],
            replica_service: Mapping[str, str], entry: str,
            wanted: list[tuple[str, str]]) -> Fits:
    """Fit every wanted (service, phase) from the request ``batches`` and ``usage``."""
    if not wanted:
        return {}
    services = sorted({s for s, _ in wanted})
    guards = {s: guard_of(usage, s) for s in services}
    lengths = {s: _window(design, guards[s]) for s in services}
    window_s = max(w for w, _ in lengths.values())  # one grid for the one pass over requests
    calls = count_calls(batches, replica_service, entry, window_s, guards)
    by_name = {w.name: w for w in windows}
    fits: Fits = {}
    for service, phase in wanted:
        if phase in by_name:
            data = build_windows(calls, usage, service, by_name[phase], window_s,
                                 guards[service], lengths[service][1])
            fits[(service, phase)] = fit_service(data)
    return fits


def add_regression_weights(requests: pd.DataFrame, fits: Fits) -> pd.DataFrame:
    """``requests`` plus the three regression columns (0 where no usable fit prices a row)."""
    columns = {name: np.zeros(len(requests))
               for name in (REGRESSION_WEIGHT, LOW, HIGH, FITTED_CALLS)}
    usable = {key: fit for key, fit in fits.items() if fit.usable}
    if usable and len(requests):
        service = requests["service"].astype(str).to_numpy()
        phase = requests["phase"].astype(str).to_numpy()
        endpoint = requests["endpoint"].astype(str).to_numpy()
        calls = requests["calls"].to_numpy(float)
        for (svc, ph), fit in usable.items():
            rows = (service == svc) & (phase == ph)
            for name, est in fit.endpoints.items():
                mask = rows & (endpoint == name)
                columns[REGRESSION_WEIGHT][mask] = calls[mask] * est.cpu_ms
                columns[LOW][mask] = calls[mask] * est.low_ms
                columns[HIGH][mask] = calls[mask] * est.high_ms
                columns[FITTED_CALLS][mask] = calls[mask]
    return requests.assign(**columns)
