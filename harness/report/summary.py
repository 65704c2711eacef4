"""``summary.json``: the run's headline numbers (a contract: keys are never renamed).

Latency percentiles are exact (numpy, linear interpolation) over ``latency_ms`` of priced
requests. Costs are in the price book's currency (``currency``) despite the ``_usd`` suffixes.
"Full" cost per call includes the share of unattributed cost spread by weight; "direct" does
not. Counters per call are sums over all calls (null when no request reported the counter);
``cpu_ms_per_call`` is the mean over the requests that reported CPU or, for an endpoint that
reported none, its CPU per call fitted from metered usage (``cpu_ms_source`` says which:
``server-timing`` | ``regression``; ``cpu_ms_ci95`` is the fit's 95 % interval), and
``attribution_basis`` lists how the endpoint's cost rows were attributed (``x_AttributionBasis``
of the ledger). ``blackbox`` lists every fit with its diagnostics and, where it was not used,
why. ``server_ms_per_call`` is the mean SERVER-span duration over the requests whose trace
had one. ``telemetry`` says where each priced request's telemetry came from (``sources``:
server-timing / otel-spans / none) and, for a run with OpenTelemetry, the lost / late /
foreign / rejected counts (``otel``, see docs/otel.md; null without OTel).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.artifacts import SUMMARY
from harness.artifacts.rundata import RunData
from harness.cost.blackbox import FITTED_CALLS, HIGH, LOW, REGRESSION_WEIGHT
from harness.cost.bootstrap import ci_by
from harness.cost.breakdown import per_call, request_costs
from harness.cost.ledger import CATEGORIES, UNATTRIBUTED, Ledger, write_atomic
from harness.cost.models import compare_billing_models
from harness.cost.profiles import profile_check
from harness.cost.quantities import COUNTERS
from harness.report.telemetry import otel_notes, telemetry_summary

PERCENTILES = {"p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0}


def _percentiles(latency: pd.Series) -> dict[str, float | None]:
    values = latency.dropna().to_numpy(float)
    if not len(values):
        return dict.fromkeys(PERCENTILES)
    points = np.percentile(values, list(PERCENTILES.values()))
    return {key: float(p) for key, p in zip(PERCENTILES, points, strict=True)}


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _ci(value: tuple[float, float] | None) -> list[float] | None:
    return list(value) if value is not None else None


def _cpu(row: pd.Series) -> dict[str, Any]:
    """CPU per call: measured (Server-Timing), else fitted by regression, with its source."""
    measured = _ratio(row["cpu_ms"], row["cpu_ms_n"])
    if measured is not None:
        return {"cpu_ms_per_call": measured, "cpu_ms_source": "server-timing",
                "cpu_ms_ci95": None}
    fitted = row.get(FITTED_CALLS, 0.0)
    if fitted > 0:
        return {"cpu_ms_per_call": row[REGRESSION_WEIGHT] / fitted,
                "cpu_ms_source": "regression",
                "cpu_ms_ci95": [row[LOW] / fitted, row[HIGH] / fitted]}
    return {"cpu_ms_per_call": None, "cpu_ms_source": None, "cpu_ms_ci95": None}


def _counters(row: pd.Series) -> dict[str, Any]:
    """Per-call telemetry of one aggregated row (sums and ``_n`` counts)."""
    calls = float(row["calls"])
    out: dict[str, Any] = {
        **_cpu(row),
        "bytes_out_per_call": _ratio(row["bytes_out"], calls) if row["bytes_out_n"] else None,
    }
    for name in COUNTERS[2:]:
        out[f"{name}_per_call"] = _ratio(row[name], calls) if row[f"{name}_n"] else None
    for name in ("cache_ops", "span_errors"):  # cache_ops: hits + misses, or from spans
        out[f"{name}_per_call"] = _ratio(row[name], calls) if row.get(f"{name}_n") else None
    out["server_ms_per_call"] = _ratio(row.get("server_ms", 0.0), row.get("server_ms_n", 0.0))
    return out


def _methods(requests: pd.DataFrame) -> dict[str, str]:
    """The most frequent HTTP method of each endpoint."""
    counts = requests.groupby(["endpoint", "method"], observed=True).size()
    counts = counts[counts > 0].sort_values(ascending=False)
    out: dict[str, str] = {}
    for endpoint, method in counts.index:
        out.setdefault(str(endpoint), str(method))
    return out


def endpoint_bases(ledger: Ledger) -> dict[str, list[str]]:
    """Per endpoint: how its cost rows were attributed (``x_AttributionBasis``), best known
    first; ``load-generator`` rows (bytes, durations the harness measured) are left out."""
    rows = ledger.rows[ledger.rows["x_Endpoint"].notna() & (ledger.rows["EffectiveCost"] > 0)]
    out: dict[str, list[str]] = {}
    for (endpoint, basis), _ in rows.groupby(["x_Endpoint", "x_AttributionBasis"]):
        if basis != "load-generator":
            out.setdefault(str(endpoint), []).append(str(basis))
    return {e: sorted(b, key=BASIS_ORDER.index) for e, b in out.items()}


BASIS_ORDER = ["server-timing", "otel-spans", "profiles", "regression", "even-split",
               "load-generator", "unattributed"]


def _endpoints(run: RunData, costs: pd.DataFrame,
               bases: dict[str, list[str]]) -> list[dict[str, Any]]:
    requests = run.priced_requests
    if not len(costs):
        return []
    sums = costs.drop(columns=["sec"]).groupby("endpoint", observed=True).sum(numeric_only=True)
    latency = requests.groupby("endpoint", observed=True)["latency_ms"]
    methods = _methods(requests)
    cis = ci_by(costs, "endpoint")
    out = []
    for name, row in sums.iterrows():
        calls = float(row["calls"])
        out.append(
            {
                "name": str(name),
                "method": methods.get(str(name)),
                "calls": int(calls),
                "errors": int(row["errors"]),
                "error_rate": _ratio(row["errors"], calls),
                **_percentiles(latency.get_group(name)),
                **_counters(row),
                "cost_per_call_usd": per_call(row["full_cost"], calls),
                "cost_per_call_direct_usd": per_call(row["direct_cost"], calls),
                "cost_per_call_ci95_usd": _ci(cis.get(str(name))),
                "attribution_basis": bases.get(str(name), []),
            }
        )
    return sorted(out, key=lambda e: -e["calls"])


def _phases(run: RunData, costs: pd.DataFrame) -> list[dict[str, Any]]:
    priced = {w.name for w in run.priced_windows}
    all_requests = run.requests if run.manifest.phases else run.priced_requests
    names = list(dict.fromkeys(p.name for p in run.manifest.phases)) or sorted(priced)
    out = []
    for name in names:
        rows = all_requests[all_requests["phase"] == name]
        mine = costs[costs["phase"] == name]
        by_endpoint = mine.groupby("endpoint", observed=True)[["full_cost", "calls"]].sum()
        count = len(rows)
        out.append(
            {
                "name": name,
                "priced": name in priced,
                "requests": count,
                "p95_ms": _percentiles(rows["latency_ms"])["p95_ms"],
                "error_rate": _ratio(float(rows["error"].notna().sum()), count),
                "cost_per_call_usd": per_call(mine["full_cost"].sum(), mine["calls"].sum())
                if name in priced
                else None,
                "endpoints": {
                    str(e): per_call(r["full_cost"], r["calls"]) for e, r in by_endpoint.iterrows()
                },
            }
        )
    return out


def _tenants(costs: pd.DataFrame, total: float) -> list[dict[str, Any]]:
    if not len(costs) or costs["tenant"].isna().all():
        return []
    sums = costs.groupby(costs["tenant"].astype(object), dropna=False)[
        ["calls", "errors", "full_cost", "direct_cost"]
    ].sum()
    out = [
        {
            "tenant": str(name) if isinstance(name, str) else None,
            "calls": int(row["calls"]),
            "errors": int(row["errors"]),
            "cost_usd": float(row["full_cost"]),
            "cost_direct_usd": float(row["direct_cost"]),
            "cost_per_call_usd": per_call(row["full_cost"], row["calls"]),
            "share_of_cost": _ratio(row["full_cost"], total),
        }
        for name, row in sums.iterrows()
    ]
    return sorted(out, key=lambda t: -t["cost_usd"])


def _attribution(ledger: Ledger) -> dict[str, str]:
    """Per service: the attribution method of its largest charge, with its billing model."""
    out: dict[str, str] = {}
    best: dict[str, float] = {}
    for alloc in ledger.allocations:
        service, model = alloc.charge.service, alloc.charge.model
        if model in ("usage-priced", "amortized") or alloc.cost <= best.get(service, -1.0):
            continue
        best[service] = alloc.cost
        out[service] = f"{alloc.method} ({model} billing)"
    return out


def _categories(ledger: Ledger, calls: float) -> dict[str, dict[str, float | None]]:
    totals = ledger.totals
    return {c: {"usd": totals[c], "per_call_usd": per_call(totals[c], calls)} for c in CATEGORIES}


def _costs(run: RunData, ledger: Ledger, costs: pd.DataFrame) -> dict[str, Any]:
    calls = ledger.inputs.calls
    totals = ledger.totals
    full = per_call(totals["total"], calls)
    return {
        "cost_per_call_usd": full,
        "cost_per_call_direct_usd": per_call(totals["attributed"], calls),
        "cost_per_million_calls_usd": full * 1e6 if full is not None else None,
        "cost_per_call_ci95_usd": _ci(ci_by(costs, None).get(None)),
        "total_cost_usd": totals["total"],
        "unattributed_share": _ratio(totals[UNATTRIBUTED], totals["total"]),
        "monthly_calls": ledger.monthly_calls,
        "monthly_projection_usd": full * ledger.monthly_calls
        if full is not None and ledger.monthly_calls
        else None,
        "categories": _categories(ledger, calls),
        "billing_models": compare_billing_models(run, ledger),
    }


def build_summary(run: RunData, ledger: Ledger) -> dict[str, Any]:
    """The summary of a priced run (see the module docstring for definitions)."""
    requests = run.priced_requests
    costs = request_costs(ledger)
    calls = ledger.inputs.calls
    errors = float(requests["error"].notna().sum())
    duration = run.duration_s
    summary: dict[str, Any] = {
        "status": run.manifest.status,
        "run_id": run.manifest.run_id,
        "scenario": run.manifest.scenario_name,
        "price_book": ledger.book.name,
        "currency": ledger.book.currency,
        "billing_model": ledger.billing_model or "per-service",
        "requests": int(calls),
        "errors": int(errors),
        "error_rate": _ratio(errors, calls),
        "duration_s": duration,
        "achieved_rps": _ratio(calls, duration),
        "asked_rps": run.manifest.traffic.get("asked_rps"),
        **_percentiles(requests["latency_ms"]),
        **_costs(run, ledger, costs),
        "tenants": _tenants(costs, ledger.totals["total"]),
        "attribution": _attribution(ledger),
        "endpoints": _endpoints(run, costs, endpoint_bases(ledger)),
        "phases": _phases(run, costs),
        "notes": list(run.notes),
        "profiles": profile_check(ledger.inputs.groups, run.run_dir / "profiles"),
        "blackbox": [fit.describe() for fit in ledger.inputs.fits.values()],
        "telemetry": telemetry_summary(run, ledger.inputs.groups),
    }
    summary["notes"] += otel_notes(summary["telemetry"])
    return summary


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, NaN/inf as null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` atomically."""
    text = json.dumps(_jsonable(summary), indent=2, allow_nan=False) + "\n"

    def write(path: Path) -> None:
        path.write_text(text, encoding="utf-8")

    write_atomic(Path(run_dir) / SUMMARY, write)
