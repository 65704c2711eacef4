"""The ledger: FOCUS-aligned cost rows, aggregated per endpoint x phase x variant x tenant x
service x category, plus one ``unattributed`` row per charge that requests do not fully explain.

``EffectiveCost`` is the direct cost; ``x_FullCost`` adds the row's share of its charge's
unattributed part (spread by the charge's weight), so Σ EffectiveCost = Σ x_FullCost = the
metered total, and a charge no request can carry keeps its cost on its unattributed row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.artifacts import PhaseWindow
from harness.cost.attribution import Allocation, allocate
from harness.cost.charges import PricingContext, build_charges, monthly_calls
from harness.cost.inputs import LedgerInputs, prepare_inputs
from harness.cost.pricebook import PriceBook
from harness.cost.quantities import GROUP_KEYS
from harness.cost.services import check_model
from harness.errors import ArtifactError
from harness.rundata import RunData

LEDGER_CSV = "ledger.csv"
LEDGER_PARQUET = "ledger.parquet"
UNATTRIBUTED = "unattributed"
CATEGORIES = (
    "compute",
    "memory",
    "egress",
    "database",
    "cache",
    "external",
    "observability",
    "requests",
    "amortized",
    UNATTRIBUTED,
)
COLUMNS = (
    "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ServiceName",
    "ServiceCategory", "ResourceId", "ConsumedQuantity", "ConsumedUnit", "PricingQuantity",
    "PricingUnit", "ListUnitPrice", "ListCost", "BilledCost", "EffectiveCost", "Tags",
    "x_Endpoint", "x_Phase", "x_Variant", "x_Tenant", "x_RequestCount", "x_CostPerRequest",
    "x_AttributionMethod", "x_PriceBook", "x_PriceKey", "x_CostCategory", "x_FullCost",
    "x_BillingModel",
)  # fmt: skip


@dataclass(frozen=True)
class Ledger:
    """The priced run: ledger rows, the allocations behind them, and what they were priced with."""

    rows: pd.DataFrame  # COLUMNS
    allocations: tuple[Allocation, ...]
    book: PriceBook
    billing_model: str | None  # None: each service's own model
    inputs: LedgerInputs
    monthly_calls: float | None = None  # projected calls per month (amortization, projection)

    @cached_property
    def totals(self) -> dict[str, float]:
        """``total``, ``attributed``, ``unattributed`` and one entry per category."""
        by_category = self.rows.groupby("x_CostCategory")["EffectiveCost"].sum()
        totals = {c: float(by_category.get(c, 0.0)) for c in CATEGORIES}
        totals["total"] = float(self.rows["EffectiveCost"].sum())
        totals["attributed"] = totals["total"] - totals[UNATTRIBUTED]
        return totals


def _block(
    alloc: Allocation, window: PhaseWindow, run_id: str, book: PriceBook
) -> dict[str, object]:
    """Columns every row of one allocation shares."""
    charge = alloc.charge
    price = charge.price
    tags = {"role": charge.role, "driver": charge.driver}
    if charge.note:
        tags["note"] = charge.note
    return {
        "BillingCurrency": book.currency,
        "ChargePeriodStart": pd.Timestamp(window.start, unit="s", tz="UTC"),
        "ChargePeriodEnd": pd.Timestamp(window.end or window.start, unit="s", tz="UTC"),
        "ChargeCategory": "Purchase" if charge.category == "amortized" else "Usage",
        "ServiceName": charge.service,
        "ServiceCategory": charge.service_category,
        "ResourceId": f"{run_id}/{charge.service}",
        "ConsumedUnit": price.base_unit,
        "PricingUnit": price.pricing_unit,
        "ListUnitPrice": price.unit_price,
        "Tags": json.dumps(tags, sort_keys=True),
        "x_PriceBook": book.name,
        "x_PriceKey": price.key,
        "x_BillingModel": charge.model,
    }


def _attributed(alloc: Allocation, groups: pd.DataFrame) -> dict[str, object]:
    rows = groups[alloc.mask(groups)]
    columns = list(dict.fromkeys(["calls", alloc.weight]))  # the weight may be "calls"
    rows = rows.groupby(list(GROUP_KEYS), observed=True, dropna=False, sort=False)[columns].sum()
    rows = rows[rows[alloc.weight] > 0].reset_index()
    share = (rows[alloc.weight] / alloc.total_weight).to_numpy()
    calls = rows["calls"].to_numpy()
    effective = alloc.attributed * share
    return {
        "x_Endpoint": rows["endpoint"].astype(object).to_numpy(),
        "x_Phase": rows["phase"].astype(object).to_numpy(),
        "x_Variant": rows["variant"].astype(object).to_numpy(),
        "x_Tenant": rows["tenant"].astype(object).to_numpy(),
        "x_RequestCount": calls,
        "ConsumedQuantity": alloc.charge.quantity * alloc.fraction * share,
        "EffectiveCost": effective,
        "x_FullCost": alloc.cost * share,
        "x_CostPerRequest": np.divide(
            effective, calls, out=np.full(len(calls), np.nan), where=calls > 0
        ),
        "x_AttributionMethod": alloc.method,
        "x_CostCategory": alloc.charge.category,
    }


def _unattributed(alloc: Allocation) -> dict[str, object]:
    spread = alloc.total_weight > 0
    return {
        "x_Endpoint": [None], "x_Phase": [alloc.charge.phase], "x_Variant": [None],
        "x_Tenant": [None], "x_RequestCount": [0.0],
        "ConsumedQuantity": [alloc.charge.quantity * (1.0 - alloc.fraction)],
        "EffectiveCost": [alloc.unattributed],
        "x_FullCost": [0.0 if spread else alloc.unattributed],
        "x_CostPerRequest": [np.nan],
        "x_AttributionMethod": "unattributed (idle, GC, background, health checks)",
        "x_CostCategory": UNATTRIBUTED,
    }  # fmt: skip


def ledger_rows(
    allocations: list[Allocation], inputs: LedgerInputs, run_id: str, book: PriceBook
) -> pd.DataFrame:
    """The FOCUS rows of every allocation."""
    windows = {w.name: w for w in inputs.windows}
    frames = []
    for alloc in allocations:
        parts = [_attributed(alloc, inputs.groups)] if alloc.total_weight > 0 else []
        if alloc.fraction < 1.0:
            parts.append(_unattributed(alloc))
        for part in parts:
            consumed = np.asarray(part["ConsumedQuantity"], dtype=float)
            if len(consumed):
                shared = _block(alloc, windows[alloc.charge.phase], run_id, book)
                part["PricingQuantity"] = consumed / alloc.charge.price.size
                frames.append(pd.DataFrame({**shared, **part}, index=range(len(consumed))))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    rows = pd.concat(frames, ignore_index=True)
    rows["ListCost"] = rows["PricingQuantity"] * rows["ListUnitPrice"]
    rows["BilledCost"] = rows["EffectiveCost"]
    return rows[list(COLUMNS)]


def price_inputs(
    run: RunData, inputs: LedgerInputs, book: PriceBook, billing_model: str | None
) -> Ledger:
    """Price already-prepared inputs (used to compare billing models without re-aggregating)."""
    check_model(billing_model)
    monthly = monthly_calls(book, run.manifest.scenario, inputs.calls, inputs.duration_s)
    context = PricingContext(
        book=book,
        services=inputs.services,
        metering=inputs.metering,
        totals=inputs.totals,
        windows=inputs.windows,
        monthly_calls=monthly,
    )
    allocations = allocate(build_charges(context, billing_model), inputs.totals)
    rows = ledger_rows(allocations, inputs, run.manifest.run_id, book)
    return Ledger(rows, tuple(allocations), book, billing_model, inputs, monthly)


def build_ledger(run: RunData, book: PriceBook, billing_model: str | None = None) -> Ledger:
    """Price ``run`` with ``book``; ``billing_model`` overrides the app services' own models."""
    check_model(billing_model)
    return price_inputs(
        run, prepare_inputs(run, book.serverless_granularity_ms), book, billing_model
    )


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file and rename, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        tmp.replace(path)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot be written ({exc.strerror or exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_ledger(run_dir: Path, ledger: Ledger) -> None:
    """Write ``ledger.csv`` and ``ledger.parquet`` into ``run_dir``."""
    rows = ledger.rows
    write_atomic(Path(run_dir) / LEDGER_CSV, lambda p: rows.to_csv(p, index=False))
    table = pa.Table.from_pandas(rows, preserve_index=False)
    write_atomic(Path(run_dir) / LEDGER_PARQUET, lambda p: pq.write_table(table, p))
