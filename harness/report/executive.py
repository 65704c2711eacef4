"""The executive view's context: headline figures, category breakdown, cost drivers, assumptions.

Every figure shown as a headline comes from ``summary.json`` as is (the template only formats
it). The per-endpoint category split and the cost drivers by service come from the ledger rows,
when the ledger is at hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.cost.ledger import UNATTRIBUTED, Ledger
from harness.report.bars import Stack, stacked_bars
from harness.report.format import blackbox_lines, usd

__all__ = ["Driver", "executive_context"]

TOP_DRIVERS = 6


@dataclass(frozen=True)
class Driver:
    """Something the money goes to: its name, its cost and its share of the total."""

    name: str
    usd: float
    share: float | None
    per_call: float | None


def _endpoint_split(ledger: Ledger) -> dict[str, dict[str, float]]:
    """Full cost per endpoint and category (unattributed cost spread in, as for the full
    cost per call)."""
    rows = ledger.rows[ledger.rows["x_Endpoint"].notna()]
    if not len(rows):
        return {}
    sums = rows.groupby([rows["x_Endpoint"].astype(str), rows["x_CostCategory"].astype(str)])[
        "x_FullCost"
    ].sum()
    out: dict[str, dict[str, float]] = {}
    for (endpoint, category), value in zip(sums.index.tolist(), sums.tolist(), strict=True):
        out.setdefault(str(endpoint), {})[str(category)] = float(value)
    return out


def _breakdown(summary: dict[str, Any], ledger: Ledger | None) -> list[Stack]:
    cats = summary.get("categories") or {}
    rows = [Stack("all calls", {k: v.get("per_call_usd") or 0.0 for k, v in cats.items()},
                  f"{usd(summary.get('cost_per_call_usd'))} per call")]  # fmt: skip
    split = _endpoint_split(ledger) if ledger is not None else {}
    for e in summary.get("endpoints") or []:
        calls = e.get("calls") or 0
        parts = split.get(str(e["name"]))
        if parts and calls:
            per_call = {k: v / calls for k, v in parts.items()}
            rows.append(Stack(str(e["name"]), per_call,
                              f"{usd(e.get('cost_per_call_usd'))} per call"))  # fmt: skip
    return rows


def _resource_drivers(summary: dict[str, Any], ledger: Ledger | None) -> list[Driver]:
    """The largest (service, category) costs; by category alone without a ledger."""
    total = summary.get("total_cost_usd") or 0.0
    calls = summary.get("requests") or 0
    if ledger is not None and len(ledger.rows):
        rows = ledger.rows
        sums: pd.Series = rows.groupby(
            [rows["ServiceName"].astype(str), rows["x_CostCategory"].astype(str)]
        )["EffectiveCost"].sum()
        pairs = zip(sums.index.tolist(), sums.tolist(), strict=True)
        items = [(f"{svc} · {'idle / unattributed' if cat == UNATTRIBUTED else cat}", float(v))
                 for (svc, cat), v in pairs]  # fmt: skip
    else:
        cats = summary.get("categories") or {}
        items = [(str(k), float(v.get("usd") or 0.0)) for k, v in cats.items()]
    items = sorted((i for i in items if i[1] > 0), key=lambda i: -i[1])[:TOP_DRIVERS]
    return [Driver(name, value, value / total if total else None,
                   value / calls if calls else None) for name, value in items]  # fmt: skip


def _endpoint_drivers(summary: dict[str, Any]) -> list[Driver]:
    """Endpoints by their share of the total (full) cost."""
    total = summary.get("total_cost_usd") or 0.0
    out = []
    for e in summary.get("endpoints") or []:
        per_call = e.get("cost_per_call_usd")
        if per_call is None:
            continue
        cost = per_call * (e.get("calls") or 0)
        out.append(Driver(str(e["name"]), cost, cost / total if total else None, per_call))
    return sorted(out, key=lambda d: -d.usd)[:TOP_DRIVERS]


def _per_million(per_call: float | None) -> float | None:
    return per_call * 1e6 if per_call is not None else None


def _endpoints(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """summary.json's endpoints plus $ per million calls and share of the total cost."""
    total = summary.get("total_cost_usd") or 0.0
    out = []
    for e in summary.get("endpoints") or []:
        per_call = e.get("cost_per_call_usd")
        cost = per_call * (e.get("calls") or 0) if per_call is not None else None
        share = cost / total if cost is not None and total else None
        out.append({**e, "per_million": _per_million(per_call), "share": share})
    return out


def _models(summary: dict[str, Any]) -> list[dict[str, Any]]:
    models = (summary.get("billing_models") or {}).get("models") or {}
    return [{"name": str(name), **m, "per_million": _per_million(m.get("cost_per_call_usd"))}
            for name, m in models.items()]  # fmt: skip


def executive_context(summary: dict[str, Any], ledger: Ledger | None) -> dict[str, Any]:
    """Template variables of the executive view."""
    return {
        "endpoints": _endpoints(summary),
        "breakdown": stacked_bars(_breakdown(summary, ledger), "Cost per call by category"),
        "split_by_endpoint": ledger is not None,
        "resource_drivers": _resource_drivers(summary, ledger),
        "endpoint_drivers": _endpoint_drivers(summary),
        "models": _models(summary),
        "break_even": summary.get("billing_models") or {},
        "attribution": sorted((summary.get("attribution") or {}).items()),
        "blackbox": blackbox_lines(summary),
    }
