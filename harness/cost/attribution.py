"""Attribution: which requests a charge is spread over, by what weight, and how much of it.

Best method first, per charge: the charge's weights in order (request CPU from Server-Timing,
then per-endpoint CPU from profiles, then per-endpoint CPU fitted from metered usage over a
designed mix (``blackbox.py``) for a service that receives requests; share of cache / DB
operations for backing services; the billed quantity itself for usage-priced items), then an
even split over the calls. Each allocation names its ``basis``, the one word the ledger's
``x_AttributionBasis`` carries: ``server-timing``, ``otel-spans``, ``profiles``,
``regression``, ``load-generator`` (bytes and durations the harness measured itself) or
``even-split``. The first weight with a positive
total over the charge's requests (same phase, and same receiving service when set) wins. What
no request explains is the charge's ``unattributed`` part:

* measured or fitted CPU: requests explain ``min(1, Σcpu_ms / billed vCPU-seconds)`` of the
  CPU charge (``regression_ms`` likewise);
* otherwise a time-metered charge's explained share is consumed / billed CPU (idle capacity of
  an instance is unattributed; under usage billing everything is explained);
* memory follows the CPU charge of the same service and phase (same weights, same share);
* usage-priced items are fully explained.

A charge whose phase has no requests at all is spread evenly over the whole run's calls in the
"full" view and stays entirely unattributed in the "direct" view.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from harness.cost.charges import Charge
from harness.cost.quantities import EXTERNAL_COLUMN, RequestTotals

METHODS = {
    "cpu_ms": "measured: request CPU (Server-Timing)",
    "profile_ms": "profile: per-endpoint CPU from profiles",
    "regression_ms": "regression: per-endpoint CPU fitted from metered usage (NNLS)",
    "calls": "even split",
    "cache_ops": "ops-share: cache operations",
    "db_ops": "ops-share: database operations",
}
RUN_WIDE = "even over the run (no requests in this phase)"
# Weight columns whose values the harness measured itself at the load generator.
MEASURED_BY_HARNESS = frozenset({"bytes_out", "billed_ms", "calls_billed"})
# Per-request counters a service reports (Server-Timing) or that its spans give (OTel).
TELEMETRY = frozenset({"cpu_ms", "db_ops", "db_reads", "db_writes", "cache_ops", "log_bytes",
                       "retries", "external_calls"})
OTEL_COUNT = "otel_n"  # requests whose counters came from their trace's spans
# Below this a weight total explains nothing (a subnormal sum would overflow cost / weight).
MIN_WEIGHT = 1e-9


@dataclass(frozen=True)
class Allocation:
    """A charge plus how it is attributed: weight column, request filter, explained share."""

    charge: Charge
    weight: str  # request column the charge is spread by
    phase: str | None  # requests of this phase (None: the whole run)
    recv: str | None  # requests received by this service (None: any)
    total_weight: float  # Σ weight over those requests (0: nothing to spread over)
    fraction: float  # share of the cost attributed to requests (direct)
    method: str
    basis: str = "even-split"  # x_AttributionBasis

    @property
    def cost(self) -> float:
        return self.charge.cost

    @property
    def attributed(self) -> float:
        return self.cost * self.fraction

    @property
    def unattributed(self) -> float:
        return self.cost - self.attributed

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        """Rows of a request-quantity frame this allocation spreads over."""
        mask = pd.Series(True, index=frame.index)
        if self.phase is not None:
            mask &= frame["phase"] == self.phase
        if self.recv is not None:
            mask &= frame["service"] == self.recv
        return mask


QUANTITIES = {
    "billed_ms": "billed duration",
    "bytes_out": "response bytes",
    "log_bytes": "log bytes",
    "cache_ops": "cache operations",
    "db_reads": "DB reads",
    "db_writes": "DB writes",
}


def _method(charge: Charge, weight: str) -> str:
    if charge.driver == "requests" and weight == charge.basis:
        vendor = weight.removeprefix(EXTERNAL_COLUMN)
        label = QUANTITIES.get(weight, f"calls to {vendor}" if vendor != weight else weight)
        return f"measured: {label}"
    return METHODS.get(weight, weight)


def basis_of(weight: str, totals: RequestTotals, phase: str | None, recv: str | None) -> str:
    """The one-word attribution basis of a weight column (see the module docstring)."""
    if weight == "calls":
        return "even-split"
    if weight == "profile_ms":
        return "profiles"
    if weight == "regression_ms":
        return "regression"
    if weight in TELEMETRY or weight.startswith(EXTERNAL_COLUMN) or weight in (
            "cache_hits", "cache_misses"):
        spans = totals.get(OTEL_COUNT, phase, recv)
        calls = totals.get("calls", phase, recv)
        return "otel-spans" if calls > 0 and spans >= calls / 2 else "server-timing"
    return "load-generator"


def _choose(charge: Charge, totals: RequestTotals) -> Allocation:
    candidates: list[tuple[str, str | None, str | None]] = [
        (w, charge.phase, charge.recv) for w in (*charge.weights, "calls")
    ]
    candidates += [("calls", charge.phase, None), ("calls", None, None)]
    for weight, phase, recv in candidates:
        total = totals.get(weight, phase, recv)
        if total > MIN_WEIGHT:
            break
    else:
        return Allocation(charge, "calls", None, None, 0.0, 0.0, "unattributed (no requests)",
                          "unattributed")
    if phase is None:
        return Allocation(charge, weight, None, None, total, 0.0, RUN_WIDE)
    if charge.driver == "requests":
        fraction = 1.0
    elif weight in ("cpu_ms", "regression_ms"):
        fraction = min(1.0, total / 1000.0 / charge.quantity)
    else:
        fraction = charge.explained
    return Allocation(charge, weight, phase, recv, total, fraction, _method(charge, weight),
                      basis_of(weight, totals, phase, recv))


def allocate(charges: list[Charge], totals: RequestTotals) -> list[Allocation]:
    """Attribute every charge; memory charges reuse their service's CPU allocation."""
    cpu: dict[tuple[str, str], Allocation] = {}
    out: list[Allocation] = []
    for charge in charges:
        if charge.resource != "memory":
            allocation = _choose(charge, totals)
            if charge.resource == "cpu":
                cpu[(charge.service, charge.phase)] = allocation
            out.append(allocation)
    for charge in charges:
        if charge.resource == "memory":
            follow = cpu.get((charge.service, charge.phase))
            if follow is None:  # no CPU metered: the memory is idle
                out.append(replace(_choose(charge, totals), fraction=0.0, method="idle memory",
                                   basis="unattributed"))
            else:
                method = f"{follow.method}; memory follows CPU weights"
                out.append(replace(follow, charge=charge, method=method))
    return out
