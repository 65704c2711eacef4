"""The same run priced under every billing model, and the containers-vs-serverless break-even.

Each model's cost is split into a time-driven part (metered instance/usage charges, a rate in
USD per hour at this run's replica count) and a request-driven part (USD per call). With cost
rate = fixed + variable x rps for both models, the rates cross at
``(fixed_instance - fixed_serverless) / (variable_serverless - variable_instance)``: below it
serverless is cheaper. This is a linear model of this run: it ignores autoscaling and free tiers.
"""

from __future__ import annotations

from typing import Any

from harness.artifacts.rundata import RunData
from harness.cost.breakdown import per_call
from harness.cost.ledger import Ledger, price_inputs
from harness.cost.services import BILLING_MODELS
from harness.errors import PriceBookError


def _model(ledger: Ledger) -> dict[str, Any]:
    calls = ledger.inputs.calls
    hours = ledger.inputs.duration_s / 3600.0
    total = ledger.totals["total"]
    timed = sum(a.cost for a in ledger.allocations if a.charge.driver == "time")
    return {
        "available": True,
        "total_usd": total,
        "cost_per_call_usd": per_call(total, calls),
        "fixed_usd_per_hour": timed / hours if hours > 0 else None,
        "variable_usd_per_call": per_call(total - timed, calls),
        "services": {
            name: spec.model(ledger.billing_model)
            for name, spec in ledger.inputs.services.items()
            if spec.billed
        },
    }


def break_even(instance: dict[str, Any], serverless: dict[str, Any]) -> tuple[float | None, str]:
    """The request rate where instance and serverless cost the same, with a sentence."""
    if not (instance.get("available") and serverless.get("available")):
        return None, "needs prices for both the instance and the serverless model"
    values = [
        instance["fixed_usd_per_hour"],
        serverless["fixed_usd_per_hour"],
        instance["variable_usd_per_call"],
        serverless["variable_usd_per_call"],
    ]
    if any(v is None for v in values):
        return None, "needs requests and a priced duration"
    fixed_i = instance["fixed_usd_per_hour"] / 3600.0
    fixed_s = serverless["fixed_usd_per_hour"] / 3600.0
    var_i, var_s = instance["variable_usd_per_call"], serverless["variable_usd_per_call"]
    if var_s <= var_i:
        cheaper = "serverless" if fixed_s <= fixed_i else "instance"
        return None, f"{cheaper} billing is cheaper at every request rate"
    rate = (fixed_i - fixed_s) / (var_s - var_i)
    if rate <= 0:
        return None, "instance billing is cheaper at every request rate"
    return rate, f"serverless is cheaper below {rate:.3g} requests/s, instance above"


def compare_billing_models(run: RunData, ledger: Ledger) -> dict[str, Any]:
    """``billing_models`` of the summary: per model total and cost per call, and the break-even."""
    models: dict[str, dict[str, Any]] = {}
    for name in BILLING_MODELS:
        try:
            priced = price_inputs(run, ledger.inputs, ledger.book, name)
        except PriceBookError as exc:
            models[name] = {"available": False, "reason": str(exc)}
            continue
        models[name] = _model(priced)
    rate, note = break_even(models["instance"], models["serverless"])
    return {"models": models, "break_even_rps": rate, "break_even_note": note}
