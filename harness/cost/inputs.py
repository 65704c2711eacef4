"""Everything the ledger is computed from, derived once from a run's artifacts."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.artifacts import PhaseWindow
from harness.artifacts.rundata import RunData
from harness.cost.blackbox import Fits, add_regression_weights, fit_run, unmeasured
from harness.cost.metering import Metering, meter
from harness.cost.profiles import add_profile_weights
from harness.cost.quantities import (
    GROUP_KEYS,
    QuantityContext,
    RequestTotals,
    aggregate_requests,
)
from harness.cost.services import ServiceSpec, entry_service, replica_services, resolve_services


@dataclass(frozen=True)
class LedgerInputs:
    """Aggregated run data; cheap to price again under another billing model."""

    requests: (
        pd.DataFrame
    )  # request quantities per (sec, endpoint, phase, variant, tenant, service)
    groups: pd.DataFrame  # the same summed over sec
    merged: pd.DataFrame  # the same summed over the receiving service too
    totals: RequestTotals
    metering: Metering
    services: dict[str, ServiceSpec]
    entry: str
    windows: tuple[PhaseWindow, ...]
    granularity_ms: float
    calls: float
    duration_s: float
    fits: Fits  # black-box fits of the (service, phase) pairs that reported no CPU


def prepare_inputs(run: RunData, granularity_ms: float) -> LedgerInputs:
    """Meter usage and aggregate the priced requests of ``run``."""
    services = resolve_services(run.manifest, run.usage)
    entry = entry_service(services)
    t0 = run.manifest.started_at
    context = QuantityContext(t0, granularity_ms, replica_services(run.usage), entry)
    requests = add_profile_weights(aggregate_requests(run.priced_batches(), context),
                                   run.run_dir / "profiles")
    fits = fit_run(run.priced_batches(), run.usage, run.priced_windows,
                   run.manifest.traffic.get("design") or {}, context.replica_service, entry,
                   unmeasured(requests))
    requests = add_regression_weights(requests, fits)
    keys = [*GROUP_KEYS, "service"]
    sums = [c for c in requests.columns if c not in (*keys, "sec")]
    groups = (
        requests.groupby(keys, observed=True, dropna=False, sort=False)[sums].sum().reset_index()
    )
    merged = (
        groups.groupby(list(GROUP_KEYS), observed=True, dropna=False, sort=False)[sums]
        .sum()
        .reset_index()
    )
    metering = meter(run.usage, run.priced_windows, services, t0)
    return LedgerInputs(
        requests=requests,
        groups=groups,
        merged=merged,
        totals=RequestTotals.of(groups),
        metering=metering,
        services=services,
        entry=entry,
        windows=run.priced_windows,
        granularity_ms=granularity_ms,
        calls=float(requests["calls"].sum()),
        duration_s=run.duration_s,
        fits=fits,
    )
