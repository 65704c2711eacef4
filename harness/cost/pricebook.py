"""The price-book model and its validation.

A book is a YAML mapping::

    name: aws-fargate-us-east-1        # must equal the file name without .yaml
    currency: USD                      # ISO 4217; every unit must use it
    effective_date: 2026-11-27
    description: ...
    extends: other-book                # optional: start from another book's prices
    serverless_granularity_ms: 100     # optional: serverless duration rounding (default 1)
    fixed_monthly: {on-call: 2000}     # optional: fixed monthly costs, amortized per call
    prices:
      vcpu_hour: {unit_price: 0.04048, unit: USD/vCPU-hour,
                  source: {url: https://..., retrieved: 2026-11-27, note: optional}}

Which key a billing model uses: ``instance`` and ``usage`` bill CPU with ``vcpu_hour`` (else
``vcpu_second``) and memory with ``memory_gib_hour`` (else ``memory_gib_second``);
``serverless`` bills duration with ``vcpu_second`` (absent: CPU is not billed apart, as on
Lambda) and ``memory_gib_second``, plus ``request``. A book holding both hourly and per-second
keys (Cloud Run) thus carries instance-based and request-based prices side by side.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from harness.cost.units import (
    FIXED_PREFIX,
    GRANULARITY_KEY,
    ISO_4217,
    MONTHLY_CALLS_KEY,
    key_spec,
    known_keys,
)
from harness.errors import PriceBookError
from harness.run.progress import LivePrices

TOP_KEYS = frozenset(
    {
        "name",
        "currency",
        "effective_date",
        "description",
        "extends",
        "prices",
        GRANULARITY_KEY,
        "fixed_monthly",
    }
)
PRICE_FIELDS = frozenset({"unit_price", "unit", "source"})
SOURCE_FIELDS = frozenset({"url", "retrieved", "note"})
NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True, slots=True)
class Price:
    """One unit price as the book writes it, plus its size in base units."""

    key: str
    unit_price: float
    unit: str  # as written: "USD/1M-requests"
    pricing_unit: str  # the denominator: "1M-requests"
    base_unit: str  # what the engine counts: "request"
    size: float  # base units per pricing unit
    source: str  # "https://... (retrieved 2026-11-27)"

    @property
    def per_base_unit(self) -> float:
        return self.unit_price / self.size


@dataclass(frozen=True)
class PriceBook:
    """A validated price book (after ``extends`` and overrides are applied)."""

    name: str
    currency: str
    effective_date: date
    description: str
    prices: Mapping[str, Price]
    serverless_granularity_ms: float = 1.0
    fixed_monthly: Mapping[str, float] = field(default_factory=dict)
    monthly_calls: float | None = None  # only from overrides
    path: str | None = None

    def get(self, key: str) -> Price | None:
        return self.prices.get(key)

    def first(self, keys: Sequence[str]) -> Price | None:
        """The first of ``keys`` the book prices."""
        for key in keys:
            if key in self.prices:
                return self.prices[key]
        return None

    def live_prices(self) -> LivePrices:
        """Per-second vCPU and GiB prices (instance keys) for the live estimate during a run."""
        cpu = self.first(("vcpu_hour", "vcpu_second"))
        memory = self.first(("memory_gib_hour", "memory_gib_second"))
        return LivePrices(
            vcpu_second=cpu.per_base_unit if cpu else 0.0,
            gib_second=memory.per_base_unit if memory else 0.0,
        )


class _Problems:
    """Collects every problem of one book so the user sees them all at once."""

    def __init__(self, book: str) -> None:
        self.book = book
        self.items: list[str] = []

    def add(self, where: str, problem: str) -> None:
        self.items.append(f"{where}: {problem}")

    def raise_if_any(self) -> None:
        if self.items:
            lines = "\n".join(f"  - {p}" for p in self.items)
            raise PriceBookError(f"price book {self.book}: {len(self.items)} problem(s)\n{lines}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _source(raw: Any, where: str, problems: _Problems) -> str:
    if not isinstance(raw, Mapping):
        problems.add(where, "source must be a mapping {url: https://..., retrieved: YYYY-MM-DD}")
        return ""
    for extra in sorted(set(raw) - SOURCE_FIELDS):
        problems.add(f"{where}.{extra}", "unknown field (allowed: url, retrieved, note)")
    url = raw.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        problems.add(f"{where}.url", f"must be an http(s) URL, got {url!r}")
    retrieved = _date(raw.get("retrieved"))
    if retrieved is None:
        problems.add(
            f"{where}.retrieved", f"must be a date YYYY-MM-DD, got {raw.get('retrieved')!r}"
        )
    note = raw.get("note")
    return f"{url} (retrieved {retrieved}{'; ' + str(note) if note else ''})"


def parse_price(key: str, raw: Any, currency: str, problems: _Problems) -> Price | None:
    """Validate one entry of ``prices``; return None (and record why) when it is unusable."""
    where = f"prices.{key}"
    spec = key_spec(key)
    if spec is None:
        problems.add(where, f"unknown price key (known: {known_keys()})")
        return None
    if not isinstance(raw, Mapping):
        problems.add(where, "must be a mapping with unit_price, unit and source")
        return None
    for extra in sorted(set(raw) - PRICE_FIELDS):
        problems.add(f"{where}.{extra}", "unknown field (allowed: unit_price, unit, source)")
    amount = _number(raw.get("unit_price"))
    if amount is None:
        problems.add(f"{where}.unit_price", f"must be a number, got {raw.get('unit_price')!r}")
    elif amount < 0:
        problems.add(f"{where}.unit_price", f"must not be negative, got {amount}")
    unit = raw.get("unit")
    allowed = [f"{currency}/{d}" for d in spec.denominators]
    cur, _, denominator = str(unit).partition("/")
    if not isinstance(unit, str) or denominator not in spec.denominators:
        problems.add(
            f"{where}.unit", f"{unit!r} is not a unit of {key} (use {' or '.join(allowed)})"
        )
    elif currency and cur != currency:
        problems.add(f"{where}.unit", f"currency {cur!r} differs from the book's {currency!r}")
    source = _source(raw.get("source"), f"{where}.source", problems)
    if amount is None or amount < 0 or denominator not in spec.denominators:
        return None
    size = spec.denominators[denominator]
    return Price(key, amount, str(unit), denominator, spec.base_unit, size, source)


def _fixed_monthly(raw: Any, problems: _Problems) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.add("fixed_monthly", "must be a mapping name -> monthly amount")
        return {}
    out: dict[str, float] = {}
    for name, value in raw.items():
        amount = _number(value)
        if amount is None or amount < 0:
            problems.add(f"fixed_monthly.{name}", f"must be a number >= 0, got {value!r}")
        else:
            out[str(name)] = amount
    return out


def _header(
    raw: Mapping[str, Any], base: PriceBook | None, problems: _Problems
) -> tuple[str, date, str]:
    for extra in sorted(set(raw) - TOP_KEYS):
        problems.add(str(extra), f"unknown key (allowed: {', '.join(sorted(TOP_KEYS))})")
    currency = raw.get("currency", base.currency if base else None)
    if not isinstance(currency, str) or currency not in ISO_4217:
        problems.add("currency", f"{currency!r} is not an ISO 4217 currency code (e.g. USD, EUR)")
        currency = ""  # units are then not checked against it
    elif base is not None and currency != base.currency:
        problems.add("currency", f"{currency} differs from the extended book's {base.currency}")
    effective = _date(raw.get("effective_date"))
    if effective is None:
        problems.add(
            "effective_date", f"must be a date YYYY-MM-DD, got {raw.get('effective_date')!r}"
        )
        effective = date.min
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.add("description", "must be a string")
        description = ""
    return currency, effective, description


def parse_book(raw: Any, label: str, base: PriceBook | None, path: str | None) -> PriceBook:
    """Validate a book's YAML mapping (``base`` = the book it extends) or raise PriceBookError."""
    if not isinstance(raw, Mapping):
        raise PriceBookError(f"price book {label}: a price book must be a YAML mapping")
    problems = _Problems(label)
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.add("name", f"must match [A-Za-z0-9._-]+, got {name!r}")
    currency, effective, description = _header(raw, base, problems)
    prices: dict[str, Price] = dict(base.prices) if base else {}
    raw_prices = raw.get("prices", {})
    if not isinstance(raw_prices, Mapping):
        problems.add("prices", "must be a mapping key -> {unit_price, unit, source}")
        raw_prices = {}
    for key, entry in raw_prices.items():
        price = parse_price(str(key), entry, currency, problems)
        if price is not None:
            prices[str(key)] = price
    granularity = raw.get(GRANULARITY_KEY, base.serverless_granularity_ms if base else 1.0)
    if _number(granularity) is None or float(granularity) <= 0:
        problems.add(GRANULARITY_KEY, f"must be a number > 0, got {granularity!r}")
        granularity = 1.0
    fixed = {
        **(base.fixed_monthly if base else {}),
        **_fixed_monthly(raw.get("fixed_monthly"), problems),
    }
    problems.raise_if_any()
    return PriceBook(
        str(name), currency, effective, description, prices, float(granularity), fixed, None, path
    )


def apply_overrides(book: PriceBook, overrides: Mapping[str, Any]) -> PriceBook:
    """Return ``book`` with scenario overrides applied (values in the key's canonical unit)."""
    problems = _Problems(f"{book.name} (scenario pricing.overrides)")
    prices = dict(book.prices)
    fixed = dict(book.fixed_monthly)
    granularity, monthly_calls = book.serverless_granularity_ms, book.monthly_calls
    for key, value in overrides.items():
        amount = _number(value)
        if amount is None or amount < 0:
            problems.add(str(key), f"must be a number >= 0, got {value!r}")
        elif key in (GRANULARITY_KEY, MONTHLY_CALLS_KEY):
            if amount <= 0:
                problems.add(key, f"must be > 0, got {amount}")
            elif key == GRANULARITY_KEY:
                granularity = amount
            else:
                monthly_calls = amount
        elif key.startswith(FIXED_PREFIX) and len(key) > len(FIXED_PREFIX):
            fixed[key[len(FIXED_PREFIX) :]] = amount
        elif (spec := key_spec(key)) is None:
            problems.add(
                key,
                f"unknown price key (known: {known_keys()}, {GRANULARITY_KEY}, "
                f"{MONTHLY_CALLS_KEY}, {FIXED_PREFIX}<name>)",
            )
        else:
            denominator, size = next(iter(spec.denominators.items()))
            unit = f"{book.currency}/{denominator}"
            source = "scenario pricing.overrides"
            prices[key] = Price(key, amount, unit, denominator, spec.base_unit, size, source)
    problems.raise_if_any()
    return replace(
        book,
        prices=prices,
        fixed_monthly=fixed,
        serverless_granularity_ms=granularity,
        monthly_calls=monthly_calls,
    )
