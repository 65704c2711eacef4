"""Billing models: what each service (and each usage-priced item) costs in each priced phase.

* ``instance``   provisioned vCPU and memory x replica-alive time, max(request, usage) per sample
* ``usage``      consumed CPU-seconds and RSS GiB-seconds
* ``serverless`` app services: a per-request fee plus each request's duration (rounded up to
  the book's granularity) x vCPU (only where the book has ``vcpu_second``) and x memory
  (provisioned, else the peak RSS seen); backing services: a price per operation (DB read/write
  units, cache operations). Without request records or operation counts a serverless service
  falls back to the usage model and says so.

Usage-priced items are charged whatever the model: egress (response bytes), log ingestion,
external calls per vendor; database / cache operations when the run has no such service (a
managed one outside the stack); fixed monthly costs amortized over the projected monthly calls.
A charge whose quantity is positive and whose price the book lacks raises PriceBookError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.artifacts import PhaseWindow
from harness.cost.metering import GIB, Metering
from harness.cost.pricebook import Price, PriceBook
from harness.cost.quantities import EXTERNAL_COLUMN, RequestTotals, vendors
from harness.cost.services import ServiceSpec
from harness.cost.units import EXTERNAL_PREFIX
from harness.errors import PriceBookError

SECONDS_PER_MONTH = 30 * 86_400
CPU_WEIGHTS = ("cpu_ms", "latency_ms")
BACKING_WEIGHTS = {"cache": "cache_ops", "database": "db_ops"}
FOCUS_CATEGORY = {
    "compute": "Compute",
    "memory": "Compute",
    "requests": "Compute",
    "cache": "Databases",
    "database": "Databases",
    "egress": "Networking",
    "observability": "Management and Governance",
    "external": "Other",
    "amortized": "Other",
}


@dataclass(frozen=True)
class Charge:
    """One priced quantity of one service (or item) in one phase, before attribution."""

    service: str
    phase: str
    category: str  # compute | memory | requests | cache | database | egress | ...
    price: Price
    quantity: float  # in price.base_unit
    model: str  # billing model, or "usage-priced" / "amortized"
    driver: str  # "time": metered from usage samples; "requests": proportional to requests
    basis: str  # time: a metering column; requests: the request column cost is linear in
    weights: tuple[str, ...]  # attribution weights, best first (request columns)
    recv: str | None = None  # attribute over requests received by this service (None: all)
    explained: float = 1.0  # share of the cost requests can explain without CPU measurements
    resource: str = ""  # "cpu" | "memory": memory follows the CPU charge's attribution
    note: str = ""
    role: str = "app"

    @property
    def cost(self) -> float:
        return self.quantity * self.price.per_base_unit

    @property
    def service_category(self) -> str:
        return FOCUS_CATEGORY[self.category]


@dataclass(frozen=True)
class PricingContext:
    book: PriceBook
    services: Mapping[str, ServiceSpec]
    metering: Metering
    totals: RequestTotals
    windows: Sequence[PhaseWindow]
    monthly_calls: float | None  # None: no calls, nothing to amortize over

    def phase_sum(self, phase: str, column: str, recv: str | None = None) -> float:
        return self.totals.get(column, phase, recv)

    def receivers(self, phase: str) -> list[str]:
        return self.totals.receivers(phase)


def require(book: PriceBook, keys: Sequence[str], used: str) -> Price:
    """The first of ``keys`` in the book, or a PriceBookError naming what needed it."""
    price = book.first(keys)
    if price is None:
        raise PriceBookError(
            f"price book {book.name!r} has no {' or '.join(repr(k) for k in keys)} price, but the "
            f"run used it: {used}. Add it to the book or to the scenario's pricing.overrides"
        )
    return price


def _category(spec: ServiceSpec, resource: str) -> str:
    return spec.role if spec.backing else ("compute" if resource == "cpu" else "memory")


def _weights(
    spec: ServiceSpec, phase: str, ctx: PricingContext
) -> tuple[tuple[str, ...], str | None]:
    if spec.name in ctx.receivers(phase):
        return (*CPU_WEIGHTS, "calls"), spec.name
    if spec.backing:
        return (BACKING_WEIGHTS[spec.role], "latency_ms", "calls"), None
    return ("latency_ms", "calls"), None


def metered(
    spec: ServiceSpec, phase: str, model: str, ctx: PricingContext, note: str = ""
) -> list[Charge]:
    """Instance or usage billing of one service in one phase, from its usage samples."""
    totals = ctx.metering.total(spec.name, phase)
    prefix = "inst" if model == "instance" else "consumed"
    cpu_basis, mem_basis = f"{prefix}_cpu_s", f"{prefix}_mem_gib_s"
    cpu_q, mem_q = totals[cpu_basis], totals[mem_basis]
    explained = totals["consumed_cpu_s"] / cpu_q if cpu_q > 0 else 0.0
    weights, recv = _weights(spec, phase, ctx)
    where = f"service {spec.name}, phase {phase}, {model} billing"
    charges = []
    for resource, quantity, basis, keys, unit in (
        ("cpu", cpu_q, cpu_basis, ("vcpu_hour", "vcpu_second"), "vCPU-seconds"),
        ("memory", mem_q, mem_basis, ("memory_gib_hour", "memory_gib_second"), "GiB-seconds"),
    ):
        if quantity <= 0:
            continue
        price = require(ctx.book, keys, f"{quantity:.6g} {unit} ({where})")
        charges.append(
            Charge(
                spec.name,
                phase,
                _category(spec, resource),
                price,
                quantity,
                model,
                "time",
                basis,
                weights,
                recv,
                min(explained, 1.0),
                resource,
                note,
                spec.role,
            )
        )
    return charges


def serverless_app(spec: ServiceSpec, phase: str, ctx: PricingContext) -> list[Charge]:
    """Per-request fee plus billed duration x (vCPU, memory) for an app service."""
    book, name = ctx.book, spec.name
    billed_s = ctx.phase_sum(phase, "billed_ms", name) / 1000.0
    calls = ctx.phase_sum(phase, "calls", name)
    memory = spec.memory or ctx.metering.peak_rss.get(name, 0.0)
    note = "" if spec.memory else "memory = peak RSS (no memory provisioned)"
    where = f"service {name}, phase {phase}, serverless billing"
    items: list[tuple[str, Price | None, float, str, str]] = [
        ("compute", book.get("vcpu_second"), billed_s * (spec.cpu or 1.0), "billed_ms", ""),
        (
            "memory",
            require(book, ("memory_gib_second",), f"{billed_s:.6g} s ({where})"),
            billed_s * memory / GIB,
            "billed_ms",
            note,
        ),
        (
            "requests",
            require(book, ("request",), f"{calls:.0f} requests ({where})"),
            calls,
            "calls",
            "",
        ),
    ]
    return [
        Charge(
            name,
            phase,
            category,
            price,
            quantity,
            "serverless",
            "requests",
            basis,
            (basis,),
            name,
            note=why,
            role=spec.role,
        )
        for category, price, quantity, basis, why in items
        if price is not None and quantity > 0
    ]


def operations(
    role: str, service: str, phase: str, model: str, ctx: PricingContext
) -> list[Charge]:
    """Per-operation charges of a serverless or managed cache / database."""
    columns = {
        "cache": (("cache_ops", "cache_op"),),
        "database": (("db_reads", "db_read"), ("db_writes", "db_write")),
    }[role]
    charges = []
    for column, key in columns:
        quantity = ctx.phase_sum(phase, column)
        if quantity > 0:
            price = require(
                ctx.book, (key,), f"{quantity:.0f} {column} (service {service}, phase {phase})"
            )
            charges.append(
                Charge(
                    service,
                    phase,
                    role,
                    price,
                    quantity,
                    model,
                    "requests",
                    column,
                    (column,),
                    role=role,
                )
            )
    return charges


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


def item_charges(phase: str, ctx: PricingContext) -> list[Charge]:
    """Usage-priced items of one phase: egress, logs, external calls, managed backing services."""
    charges = []
    for recv in ctx.receivers(phase):
        for column, key, category in (
            ("bytes_out", "egress_gb", "egress"),
            ("log_bytes", "log_ingest_gb", "observability"),
        ):
            gigabytes = ctx.phase_sum(phase, column, recv) / 1e9
            if gigabytes > 0:
                price = require(ctx.book, (key,), f"{gigabytes:.6g} GB of {column} (phase {phase})")
                charges.append(
                    Charge(
                        recv,
                        phase,
                        category,
                        price,
                        gigabytes,
                        "usage-priced",
                        "requests",
                        column,
                        (column,),
                        recv,
                    )
                )
    for vendor in vendors(ctx.totals.overall.index):
        column, key = EXTERNAL_COLUMN + vendor, EXTERNAL_PREFIX + vendor
        calls = ctx.phase_sum(phase, column)
        if calls > 0:
            price = require(ctx.book, (key,), f"{calls:.0f} calls to {vendor} (phase {phase})")
            charges.append(
                Charge(
                    vendor,
                    phase,
                    "external",
                    price,
                    calls,
                    "usage-priced",
                    "requests",
                    column,
                    (column,),
                    role="external",
                )
            )
    roles = {spec.role for spec in ctx.services.values()}
    for role in ("cache", "database"):
        if role not in roles:
            charges += operations(role, f"{role} (managed)", phase, "usage-priced", ctx)
    return charges + amortized(phase, ctx)


def amortized(phase: str, ctx: PricingContext) -> list[Charge]:
    """Fixed monthly costs: this phase's calls' share of a month's projected calls."""
    calls = ctx.phase_sum(phase, "calls")
    if not ctx.book.fixed_monthly or not ctx.monthly_calls or calls <= 0:
        return []
    months = calls / ctx.monthly_calls
    return [
        Charge(
            name,
            phase,
            "amortized",
            Price(
                "fixed_monthly",
                amount,
                f"{ctx.book.currency}/month",
                "month",
                "month",
                1.0,
                "price book fixed_monthly",
            ),
            months,
            "amortized",
            "requests",
            "calls",
            ("calls",),
        )
        for name, amount in ctx.book.fixed_monthly.items()
        if amount > 0
    ]


def build_charges(ctx: PricingContext, override: str | None) -> list[Charge]:
    """Every charge of the run, phase by phase."""
    charges: list[Charge] = []
    for window in ctx.windows:
        for spec in ctx.services.values():
            charges += service_charges(spec, window.name, spec.model(override), ctx)
        charges += item_charges(window.name, ctx)
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
