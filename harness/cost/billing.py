"""Billing models: what each service costs in each priced phase.

* ``instance``   provisioned vCPU and memory x replica-alive time, max(request, usage) per sample
* ``usage``      consumed CPU-seconds and RSS GiB-seconds
* ``serverless`` app services: a per-request fee plus each request's duration (rounded up to
  the book's granularity) x vCPU (only where the book has ``vcpu_second``) and x memory
  (provisioned, else the peak RSS seen); backing services: a price per operation (DB read/write
  units, cache operations). Without request records or operation counts a serverless service
  falls back to the usage model and says so.

A billing-model override (``harness price --billing-model``) applies to app services; backing
services keep their own model. Services of an unbilled role (``external`` stand-ins for paid
APIs, the load generator) have no compute charge.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.cost.charges import (
    Charge,
    PricingContext,
    item_charges,
    operations,
    per_request,
    require,
)
from harness.cost.metering import GIB
from harness.cost.pricebook import PriceBook
from harness.cost.services import ServiceSpec

SECONDS_PER_MONTH = 30 * 86_400
# Best first; no latency weight: measured on a target with known CPU per endpoint and no
# header, latency charged a 5 ms endpoint +35 % and a ~0 ms one 100x its CPU (docs/blackbox.md).
CPU_WEIGHTS = ("cpu_ms", "profile_ms", "regression_ms", "calls")
BACKING_WEIGHTS = {"cache": "cache_ops", "database": "db_ops"}
METERED = (
    ("cpu", "cpu_s", ("vcpu_hour", "vcpu_second"), "vCPU-seconds"),
    ("memory", "mem_gib_s", ("memory_gib_hour", "memory_gib_second"), "GiB-seconds"),
)


def _weights(
    spec: ServiceSpec, phase: str, ctx: PricingContext
) -> tuple[tuple[str, ...], str | None]:
    """Attribution weights (best first) and the receiving-service filter of a metered service."""
    if spec.name in ctx.receivers(phase):
        return CPU_WEIGHTS, spec.name
    if spec.backing:
        return (BACKING_WEIGHTS[spec.role], "calls"), None
    return ("calls",), None


def metered(
    spec: ServiceSpec, phase: str, model: str, ctx: PricingContext, note: str = ""
) -> list[Charge]:
    """Instance or usage billing of one service in one phase, from its usage samples."""
    totals = ctx.metering.total(spec.name, phase)
    prefix = "inst" if model == "instance" else "consumed"
    cpu = totals[f"{prefix}_cpu_s"]
    explained = min(totals["consumed_cpu_s"] / cpu, 1.0) if cpu > 0 else 0.0
    weights, recv = _weights(spec, phase, ctx)
    where = f"service {spec.name}, phase {phase}, {model} billing"
    charges = []
    for resource, column, keys, unit in METERED:
        quantity = totals[f"{prefix}_{column}"]
        if quantity <= 0:
            continue
        price = require(ctx.book, keys, f"{quantity:.6g} {unit} ({where})")
        category = spec.role if spec.backing else ("compute" if resource == "cpu" else "memory")
        charges.append(
            Charge(
                service=spec.name,
                phase=phase,
                category=category,
                price=price,
                quantity=quantity,
                model=model,
                driver="time",
                basis=f"{prefix}_{column}",
                weights=weights,
                recv=recv,
                explained=explained,
                resource=resource,
                note=note,
                role=spec.role,
            )
        )
    return charges


def serverless_app(spec: ServiceSpec, phase: str, ctx: PricingContext) -> list[Charge]:
    """Per-request fee plus billed duration x (vCPU, memory) for an app service."""
    book, name = ctx.book, spec.name
    billed_s = ctx.phase_sum(phase, "billed_ms", name) / 1000.0
    calls = ctx.phase_sum(phase, "calls", name)
    memory = spec.memory or ctx.metering.peak_rss.get(name, 0.0)
    where = f"service {name}, phase {phase}, serverless billing"
    memory_price = require(book, ("memory_gib_second",), f"{billed_s:.6g} s ({where})")
    request_price = require(book, ("request",), f"{calls:.0f} requests ({where})")
    cpu_price = book.get("vcpu_second")  # absent: CPU is not billed apart (Lambda)
    memory_note = "" if spec.memory else "memory = peak RSS (no memory provisioned)"
    common = {"model": "serverless", "recv": name, "role": spec.role}
    charges = [
        per_request(name, phase, "memory", memory_price, billed_s * memory / GIB, "billed_ms",
                    note=memory_note, **common),
        per_request(name, phase, "requests", request_price, calls, "calls", **common),
    ]  # fmt: skip
    if cpu_price is not None:
        cpu = billed_s * (spec.cpu or 1.0)
        charges.append(per_request(name, phase, "compute", cpu_price, cpu, "billed_ms", **common))
    return [c for c in charges if c.quantity > 0]


def service_charges(spec: ServiceSpec, phase: str, model: str, ctx: PricingContext) -> list[Charge]:
    """What one service costs in one phase under ``model``."""
    if not spec.billed:
        return []
    if model != "serverless":
        return metered(spec, phase, model, ctx)
    if spec.backing:
        ops = operations(spec.role, spec.name, phase, model, ctx)
        fallback = "serverless without operation counts: priced by usage"
        return ops or metered(spec, phase, "usage", ctx, fallback)
    if spec.name in ctx.receivers(phase):
        return serverless_app(spec, phase, ctx)
    return metered(spec, phase, "usage", ctx, "serverless without request records: priced by usage")


def build_charges(ctx: PricingContext, override: str | None) -> list[Charge]:
    """Every charge of the run, phase by phase. A phase may have several windows (``recovery``
    after each fault): metering and requests are grouped by phase name, so each name is
    charged once."""
    charges: list[Charge] = []
    for phase in dict.fromkeys(w.name for w in ctx.windows):
        for spec in ctx.services.values():
            charges += service_charges(spec, phase, spec.model(override), ctx)
        charges += item_charges(phase, ctx)
    return charges


def monthly_calls(
    book: PriceBook, scenario: Mapping[str, object], calls: float, duration_s: float
) -> float | None:
    """Projected monthly calls: ``monthly_calls`` from pricing or overrides, else rate x 30 days."""
    pricing = scenario.get("pricing")
    given = pricing.get("monthly_calls") if isinstance(pricing, Mapping) else None
    if isinstance(given, int | float) and not isinstance(given, bool) and given > 0:
        return float(given)
    if book.monthly_calls:
        return book.monthly_calls
    if calls <= 0 or duration_s <= 0:
        return None
    return calls / duration_s * SECONDS_PER_MONTH
