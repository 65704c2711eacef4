"""The debug view's context: one drill-down panel per endpoint.

A panel holds the endpoint's resources per call (Server-Timing counters from ``summary.json``;
attributed memory-time from the ledger), its full cost per call by category and by phase, and
its costliest request groups. The cost engine prices aggregates, not single requests: a
*request group* is the requests of one endpoint, phase, tenant and receiving service that
started within the same second (``request_costs(ledger)``); its cost per call is the group's
mean, so a group of one request is exactly that request's cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.cost.breakdown import request_costs
from harness.cost.ledger import Ledger
from harness.report.format import num

__all__ = ["Costly", "Panel", "debug_context"]

TOP_GROUPS = 8
MEMORY_UNIT = "GiB-second"
RESOURCES = (
    ("cpu_ms_per_call", "CPU (Server-Timing)", "ms"),
    ("memory_mib_s_per_call", "memory-time attributed", "MiB·s"),
    ("bytes_out_per_call", "response bytes", "B"),
    ("db_reads_per_call", "database reads", "ops"),
    ("db_writes_per_call", "database writes", "ops"),
    ("cache_hits_per_call", "cache hits", "ops"),
    ("cache_misses_per_call", "cache misses", "ops"),
    ("cache_ops_per_call", "cache operations", "ops"),
    ("server_ms_per_call", "SERVER span duration (OTel)", "ms"),
    ("external_calls_per_call", "external calls", "calls"),
    ("retries_per_call", "retries", "retries"),
    ("log_bytes_per_call", "log bytes", "B"),
)


@dataclass(frozen=True)
class Costly:
    """One request group (see the module docstring)."""

    t: int  # second since the run started
    endpoint: str
    phase: str
    tenant: str | None
    service: str
    calls: int
    errors: int
    cpu_ms_per_call: float | None
    full_per_call: float
    direct_per_call: float


@dataclass(frozen=True)
class Panel:
    """One endpoint's drill-down."""

    anchor: str  # HTML id (endpoint names are free text, so never used as ids)
    endpoint: dict[str, Any]  # its summary.json entry
    resources: list[tuple[str, str, str]]  # label, formatted value, unit
    categories: list[tuple[str, float]]  # category, full cost per call
    phases: list[tuple[str, float | None]]  # phase, full cost per call
    costly: list[Costly]


def _text(value: object) -> str | None:
    return None if value is None or pd.isna(value) else str(value)  # type: ignore[call-overload]


def costliest(costs: pd.DataFrame, endpoint: str | None, top: int = TOP_GROUPS) -> list[Costly]:
    """The request groups with the highest full cost per call (of one endpoint, or all)."""
    frame = costs[costs["calls"] > 0]
    if endpoint is not None:
        frame = frame[frame["endpoint"].astype(str) == endpoint]
    if not len(frame):
        return []
    frame = frame.assign(per_call=frame["full_cost"] / frame["calls"])
    out = []
    for _, row in frame.nlargest(top, "per_call").iterrows():
        cpu_n = float(row["cpu_ms_n"])
        out.append(Costly(
            t=int(row["sec"]), endpoint=str(row["endpoint"]), phase=str(row["phase"]),
            tenant=_text(row["tenant"]), service=str(row["service"]), calls=int(row["calls"]),
            errors=int(row["errors"]),
            cpu_ms_per_call=float(row["cpu_ms"]) / cpu_n if cpu_n > 0 else None,
            full_per_call=float(row["per_call"]),
            direct_per_call=float(row["direct_cost"]) / float(row["calls"]),
        ))  # fmt: skip
    return out


def _by_endpoint(rows: pd.DataFrame, column: str, by: str | None = None) -> pd.Series:
    rows = rows[rows["x_Endpoint"].notna()]
    keys = [rows["x_Endpoint"].astype(str)] + ([rows[by].astype(str)] if by else [])
    return rows.groupby(keys)[column].sum()


def _ledger_facts(ledger: Ledger | None) -> tuple[pd.Series, pd.Series]:
    """Memory GiB-seconds per endpoint and full cost per (endpoint, category)."""
    if ledger is None or not len(ledger.rows):
        empty = pd.Series(dtype=float)
        return empty, empty
    rows = ledger.rows
    memory = _by_endpoint(rows[rows["ConsumedUnit"] == MEMORY_UNIT], "ConsumedQuantity")
    return memory, _by_endpoint(rows, "x_FullCost", "x_CostCategory")


def _resources(endpoint: dict[str, Any], memory_gib_s: float | None) -> list[tuple[str, str, str]]:
    calls = endpoint.get("calls") or 0
    values = dict(endpoint)
    if memory_gib_s is not None and calls:
        values["memory_mib_s_per_call"] = memory_gib_s * 1024 / calls
    out = [(label, num(values.get(key)), unit) for key, label, unit in RESOURCES
           if values.get(key) is not None]  # fmt: skip
    ci = endpoint.get("cpu_ms_ci95")
    if endpoint.get("cpu_ms_source") == "regression" and ci and out:
        value = f"{num(values['cpu_ms_per_call'])} [{num(ci[0])}–{num(ci[1])}]"
        out[0] = ("CPU (fitted by regression, 95 % interval)", value, "ms")
    return out


def _panel(index: int, endpoint: dict[str, Any], summary: dict[str, Any], memory: pd.Series,
           split: pd.Series, costs: pd.DataFrame | None) -> Panel:  # fmt: skip
    name = str(endpoint["name"])
    calls = endpoint.get("calls") or 0
    mine = split[split.index.get_level_values(0) == name] if len(split) else split
    pairs = zip(mine.index.tolist(), mine.tolist(), strict=True)
    categories = sorted(((str(cat), float(v) / calls) for (_, cat), v in pairs
                         if v > 0 and calls), key=lambda c: -c[1])  # fmt: skip
    phases = [(str(p["name"]), (p.get("endpoints") or {}).get(name))
              for p in summary.get("phases") or [] if p.get("priced", True)]  # fmt: skip
    return Panel(
        anchor=f"endpoint-{index}", endpoint=endpoint,
        resources=_resources(endpoint, float(memory[name]) if name in memory.index else None),
        categories=categories, phases=[p for p in phases if p[1] is not None],
        costly=costliest(costs, name) if costs is not None else [],
    )  # fmt: skip


def debug_context(summary: dict[str, Any], ledger: Ledger | None) -> dict[str, Any]:
    """Template variables of the debug view."""
    costs = request_costs(ledger) if ledger is not None else None
    memory, split = _ledger_facts(ledger)
    panels = [_panel(i, e, summary, memory, split, costs)
              for i, e in enumerate(summary.get("endpoints") or [])]  # fmt: skip
    return {
        "panels": panels,
        "costliest": costliest(costs, None) if costs is not None else [],
        "has_ledger": ledger is not None,
    }
