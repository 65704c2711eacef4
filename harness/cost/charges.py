"""Charges: priced quantities before attribution, and the usage-priced items.

A :class:`Charge` is one priced quantity of one service (or item) in one priced phase. Billing
models (``billing.py``) make the charges of services; this module makes the usage-priced ones,
charged whatever the model: egress (response bytes), log ingestion, external calls per vendor,
database / cache operations when the run has no such service (a managed one outside the
stack), and fixed monthly costs amortized over the projected monthly calls. A charge whose
quantity is positive and whose price the book lacks raises PriceBookError naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.artifacts import PhaseWindow
from harness.cost.metering import Metering
from harness.cost.pricebook import Price, PriceBook
from harness.cost.quantities import EXTERNAL_COLUMN, RequestTotals, vendors
from harness.cost.services import ServiceSpec
from harness.cost.units import EXTERNAL_PREFIX
from harness.errors import PriceBookError

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
OPERATIONS = {
    "cache": (("cache_ops", "cache_op"),),
    "database": (("db_reads", "db_read"), ("db_writes", "db_write")),
}
USAGE_PRICED = "usage-priced"


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
    """What pricing one run needs: the book, the services, metered usage, request totals."""

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


def per_request(
    service: str,
    phase: str,
    category: str,
    price: Price,
    quantity: float,
    column: str,
    *,
    model: str = USAGE_PRICED,
    recv: str | None = None,
    role: str = "app",
    note: str = "",
) -> Charge:
    """A charge proportional to one request column, attributed by that column."""
    return Charge(
        service=service,
        phase=phase,
        category=category,
        price=price,
        quantity=quantity,
        model=model,
        driver="requests",
        basis=column,
        weights=(column,),
        recv=recv,
        role=role,
        note=note,
    )


def operations(
    role: str, service: str, phase: str, model: str, ctx: PricingContext
) -> list[Charge]:
    """Per-operation charges of a serverless or managed cache / database."""
    charges = []
    for column, key in OPERATIONS[role]:
        quantity = ctx.phase_sum(phase, column)
        if quantity > 0:
            used = f"{quantity:.0f} {column} (service {service}, phase {phase})"
            price = require(ctx.book, (key,), used)
            charges.append(per_request(service, phase, role, price, quantity, column,
                                       model=model, role=role))  # fmt: skip
    return charges


def _bytes(phase: str, ctx: PricingContext) -> list[Charge]:
    charges = []
    for recv in ctx.receivers(phase):
        for column, key, category in (
            ("bytes_out", "egress_gb", "egress"),
            ("log_bytes", "log_ingest_gb", "observability"),
        ):
            gigabytes = ctx.phase_sum(phase, column, recv) / 1e9
            if gigabytes > 0:
                price = require(ctx.book, (key,), f"{gigabytes:.6g} GB of {column} (phase {phase})")
                charges.append(per_request(recv, phase, category, price, gigabytes, column,
                                           recv=recv))  # fmt: skip
    return charges


def _external(phase: str, ctx: PricingContext) -> list[Charge]:
    charges = []
    for vendor in vendors(ctx.totals.overall.index):
        column = EXTERNAL_COLUMN + vendor
        calls = ctx.phase_sum(phase, column)
        if calls > 0:
            used = f"{calls:.0f} calls to {vendor} (phase {phase})"
            price = require(ctx.book, (EXTERNAL_PREFIX + vendor,), used)
            charges.append(per_request(vendor, phase, "external", price, calls, column,
                                       role="external"))  # fmt: skip
    return charges


def amortized(phase: str, ctx: PricingContext) -> list[Charge]:
    """Fixed monthly costs: this phase's calls' share of a month's projected calls."""
    calls = ctx.phase_sum(phase, "calls")
    if not ctx.monthly_calls or calls <= 0:
        return []
    charges = []
    for name, amount in ctx.book.fixed_monthly.items():
        price = Price(key="fixed_monthly", unit_price=amount, unit=f"{ctx.book.currency}/month",
                      pricing_unit="month", base_unit="month", size=1.0,
                      source="price book fixed_monthly")  # fmt: skip
        months = calls / ctx.monthly_calls
        if amount > 0:
            charges.append(per_request(name, phase, "amortized", price, months, "calls",
                                       model="amortized", role="fixed"))  # fmt: skip
    return charges


def item_charges(phase: str, ctx: PricingContext) -> list[Charge]:
    """Usage-priced items of one phase: bytes, external calls, managed backing services, fixed."""
    charges = _bytes(phase, ctx) + _external(phase, ctx)
    roles = {spec.role for spec in ctx.services.values()}
    for role in ("cache", "database"):
        if role not in roles:
            charges += operations(role, f"{role} (managed)", phase, USAGE_PRICED, ctx)
    return charges + amortized(phase, ctx)
