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
from harness.artifacts.rundata import RunData
from harness.cost.attribution import Allocation, allocate
from harness.cost.billing import build_charges, monthly_calls
from harness.cost.blackbox import HIGH, LOW, REGRESSION_WEIGHT
from harness.cost.charges import PricingContext
from harness.cost.inputs import LedgerInputs, prepare_inputs
from harness.cost.pricebook import PriceBook
from harness.cost.services import check_model
from harness.errors import ArtifactError

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
    "x_BillingModel", "x_AttributionBasis", "x_CostPerRequestLow", "x_CostPerRequestHigh",
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
    """Columns every row of one allocation shares (scalars)."""
    charge = alloc.charge
    price = charge.price
    tags = {"role": charge.role, "driver": charge.driver}
    if charge.note:
        tags["note"] = charge.note
    return {
        "BillingCurrency": book.currency,
        "ChargePeriodStart": window.start,
        "ChargePeriodEnd": window.end if window.end is not None else window.start,
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


def _attributed(alloc: Allocation, inputs: LedgerInputs) -> dict[str, object]:
    """One row per request group the allocation spreads over (weight > 0)."""
    frame = inputs.merged if alloc.recv is None else inputs.groups
    mask = alloc.mask(frame).to_numpy() & (frame[alloc.weight].to_numpy() > 0)
    rows = frame[mask]
    share = rows[alloc.weight].to_numpy(float) / alloc.total_weight
    calls = rows["calls"].to_numpy(float)
    effective = alloc.attributed * share
    per_request = np.divide(effective, calls, out=np.full(len(calls), np.nan), where=calls > 0)
    low, high = _interval(alloc, rows, per_request)
    return {
        "x_Endpoint": rows["endpoint"].astype(object).to_numpy(),
        "x_Phase": rows["phase"].astype(object).to_numpy(),
        "x_Variant": rows["variant"].astype(object).to_numpy(),
        "x_Tenant": rows["tenant"].astype(object).to_numpy(),
        "x_RequestCount": calls,
        "ConsumedQuantity": alloc.charge.quantity * alloc.fraction * share,
        "EffectiveCost": effective,
        "x_FullCost": alloc.cost * share,
        "x_CostPerRequest": per_request,
        "x_AttributionMethod": alloc.method,
        "x_CostCategory": alloc.charge.category,
        "x_AttributionBasis": alloc.basis,
        "x_CostPerRequestLow": low,
        "x_CostPerRequestHigh": high,
    }


def _interval(alloc: Allocation, rows: pd.DataFrame,
              per_request: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95 % interval of the cost per request where it was estimated (NaN where measured)."""
    nan = np.full(len(per_request), np.nan)
    if alloc.weight != REGRESSION_WEIGHT:
        return nan, nan
    weight = rows[REGRESSION_WEIGHT].to_numpy(float)
    low = np.divide(rows[LOW].to_numpy(float), weight, out=nan.copy(), where=weight > 0)
    high = np.divide(rows[HIGH].to_numpy(float), weight, out=nan.copy(), where=weight > 0)
    return per_request * low, per_request * high


def _unattributed(alloc: Allocation) -> dict[str, object]:
    """The part of a charge no request explains (its full cost is spread when it can be)."""
    spread = alloc.total_weight > 0
    return {
        "x_Endpoint": np.array([None]), "x_Phase": np.array([alloc.charge.phase], dtype=object),
        "x_Variant": np.array([None]), "x_Tenant": np.array([None]),
        "x_RequestCount": np.zeros(1),
        "ConsumedQuantity": np.array([alloc.charge.quantity * (1.0 - alloc.fraction)]),
        "EffectiveCost": np.array([alloc.unattributed]),
        "x_FullCost": np.array([0.0 if spread else alloc.unattributed]),
        "x_CostPerRequest": np.array([np.nan]),
        "x_AttributionMethod": "unattributed (idle, GC, background, health checks)",
        "x_CostCategory": UNATTRIBUTED,
        "x_AttributionBasis": UNATTRIBUTED,
        "x_CostPerRequestLow": np.array([np.nan]), "x_CostPerRequestHigh": np.array([np.nan]),
    }  # fmt: skip


def _assemble(parts: list[dict[str, object]]) -> pd.DataFrame:
    """One frame from row blocks whose values are arrays (per row) or scalars (per block)."""
    columns: dict[str, list[np.ndarray]] = {c: [] for c in parts[0]}
    for part in parts:
        n = len(part["EffectiveCost"])  # type: ignore[arg-type]
        for name, value in part.items():
            array = value if isinstance(value, np.ndarray) else np.full(n, value, dtype=object)
            columns[name].append(array)
    frame = pd.DataFrame({name: np.concatenate(arrays) for name, arrays in columns.items()})
    for name in ("ChargePeriodStart", "ChargePeriodEnd"):
        frame[name] = pd.to_datetime(frame[name].astype(float), unit="s", utc=True)
    for name in ("ListUnitPrice", "x_CostPerRequestLow", "x_CostPerRequestHigh"):
        frame[name] = frame[name].astype(float)
    return frame


def ledger_rows(
    allocations: list[Allocation], inputs: LedgerInputs, run_id: str, book: PriceBook
) -> pd.DataFrame:
    """The FOCUS rows of every allocation."""
    windows: dict[str, PhaseWindow] = {}
    for w in inputs.windows:  # a phase with several windows spans from the first to the last
        first = windows.get(w.name, w)
        windows[w.name] = first.model_copy(update={"end": w.end})
    parts: list[dict[str, object]] = []
    for alloc in allocations:
        blocks = [_attributed(alloc, inputs)] if alloc.total_weight > 0 else []
        if alloc.fraction < 1.0:
            blocks.append(_unattributed(alloc))
        shared = _block(alloc, windows[alloc.charge.phase], run_id, book)
        for block in blocks:
            consumed = np.asarray(block["ConsumedQuantity"], dtype=float)
            if len(consumed):
                block["PricingQuantity"] = consumed / alloc.charge.price.size
                parts.append({**shared, **block})
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    rows = _assemble(parts)
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
