"""The cost engine: price books, billing models, attribution, the FOCUS ledger.

Takes a run directory's artifacts (``harness.artifacts.RunData``) and a named price book;
``price`` returns the :class:`Ledger` — FOCUS-aligned rows per endpoint x phase x variant x
tenant x service x category, every row naming how it was attributed, plus one
``unattributed`` row per charge requests do not explain. Writing the summary and the report
from it is ``harness.report``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.artifacts.rundata import RunData, load_run
from harness.cost.books import DEFAULT_BOOK, PriceBookInfo, list_price_books, load_price_book
from harness.cost.ledger import Ledger, build_ledger, write_ledger
from harness.cost.pricebook import Price, PriceBook
from harness.cost.services import BILLING_MODELS
from harness.errors import PriceBookError

__all__ = [
    "Priced",
    "price",
    "BILLING_MODELS",
    "DEFAULT_BOOK",
    "Ledger",
    "Price",
    "PriceBook",
    "PriceBookInfo",
    "build_ledger",
    "list_price_books",
    "load_price_book",
    "scenario_overrides",
    "write_ledger",
]


def scenario_overrides(run: RunData) -> dict[str, Any]:
    """The scenario's ``pricing.overrides`` recorded in the manifest (empty when none)."""
    pricing = run.manifest.scenario.get("pricing")
    overrides = pricing.get("overrides") if isinstance(pricing, Mapping) else None
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise PriceBookError("scenario pricing.overrides must be a mapping key -> number")
    return {str(k): v for k, v in overrides.items()}


@dataclass(frozen=True)
class Priced:
    """A run loaded from disk and priced: what every analysis starts from."""

    run: RunData
    book: PriceBook
    ledger: Ledger


def price(
    run_dir: Path, price_book: str | None = None, billing_model: str | None = None
) -> Priced:
    """Load a run and price it with ``price_book`` (default: the one the run named) and the
    scenario's own price overrides."""
    run = load_run(Path(run_dir))
    book = load_price_book(
        price_book or run.manifest.price_book or DEFAULT_BOOK, scenario_overrides(run)
    )
    return Priced(run, book, build_ledger(run, book, billing_model))
