"""Per-window sums of a run: the unit that compare and the gate resample.

A run's priced time is cut into windows of ``window_seconds`` (1 s, longer for long runs so
there are at most MAX_WINDOWS). Per window and endpoint we keep the calls, the errors, the full
cost split by category (``unattributed`` holds full minus direct cost, so Σ categories = full
cost per call, Σ without it = direct) and a latency histogram (BINS_PER_DECADE log bins from
LATENCY_MIN_MS; percentiles are interpolated inside a bin, about ±3 %). Everything a CI of cost
per call, latency percentile, error rate or throughput needs is a sum of these, so a stored
baseline (:mod:`harness.compare.baselines`) keeps them instead of the raw Parquet files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.artifacts import PhaseWindow
from harness.artifacts.rundata import RunData
from harness.cost.ledger import CATEGORIES, UNATTRIBUTED, Ledger

MAX_WINDOWS = 60
LATENCY_MIN_MS = 0.01
BINS_PER_DECADE = 40
N_BINS = 8 * BINS_PER_DECADE  # 0.01 ms .. 1000 s


@dataclass(frozen=True)
class Pricing:
    """What a run was priced with (both sides of a comparison must match)."""

    price_book: str
    billing_model: str | None  # None: each service's own model
    currency: str


@dataclass(frozen=True)
class RunWindows:
    """One run's per-window sums. Shapes: W windows, E endpoints, C categories, N_BINS bins."""

    run_id: str
    endpoints: tuple[str, ...]
    categories: tuple[str, ...]
    seconds: np.ndarray  # (W,) priced seconds inside each window
    calls: np.ndarray  # (W, E)
    errors: np.ndarray  # (W, E)
    cost: np.ndarray  # (W, E, C) full cost by category
    latency: np.ndarray  # (W, E, N_BINS) request counts per latency bin

    @property
    def n_windows(self) -> int:
        return int(self.seconds.shape[0])


def window_seconds(span_s: float) -> int:
    """Window length: 1 s, or longer so a run has at most MAX_WINDOWS windows."""
    return max(1, math.ceil(span_s / MAX_WINDOWS))


def latency_bins(latency_ms: np.ndarray) -> np.ndarray:
    """The histogram bin of each latency (clipped to the first and last bin)."""
    safe = np.maximum(latency_ms, LATENCY_MIN_MS)
    bins = np.floor(np.log10(safe / LATENCY_MIN_MS) * BINS_PER_DECADE)
    out: np.ndarray = np.clip(bins, 0, N_BINS - 1).astype(np.int64)
    return out


def bin_to_ms(position: np.ndarray) -> np.ndarray:
    """Latency at a fractional bin position (log-linear inside a bin)."""
    out: np.ndarray = LATENCY_MIN_MS * np.power(10.0, position / BINS_PER_DECADE)
    return out


def category_costs(ledger: Ledger) -> pd.DataFrame:
    """``ledger.inputs.requests`` keys with one cost column per category: each allocation's
    attributed part under its charge's category and its unattributed part (spread by the
    same weight, as in the full cost) under ``unattributed``."""
    frame = ledger.inputs.requests
    columns: dict[str, np.ndarray] = {}
    for alloc in ledger.allocations:
        if alloc.total_weight <= 0:
            continue
        mask = alloc.mask(frame).to_numpy()
        share = frame[alloc.weight].to_numpy(float)[mask] / alloc.total_weight
        for category, amount in ((alloc.charge.category, alloc.attributed),
                                 (UNATTRIBUTED, alloc.unattributed)):  # fmt: skip
            if amount > 0:
                column = columns.setdefault(category, np.zeros(len(frame)))
                column[mask] += share * amount
    ordered = {c: columns[c] for c in CATEGORIES if c in columns}
    return frame[["sec", "endpoint", "calls", "errors"]].assign(**ordered)


@dataclass(frozen=True)
class _Grid:
    """Where each second of the run falls: window index and priced seconds per window."""

    first_sec: int
    length: int
    seconds: np.ndarray

    def index(self, sec: np.ndarray) -> np.ndarray:
        raw = (np.asarray(sec, dtype=np.int64) - self.first_sec) // self.length
        return np.clip(raw, 0, len(self.seconds) - 1)


def _grid(windows: tuple[PhaseWindow, ...], t0: float) -> _Grid:
    spans = [(w.start - t0, (w.end if w.end is not None else w.start) - t0) for w in windows]
    first = math.floor(min(s for s, _ in spans))
    last = math.ceil(max(e for _, e in spans))
    length = window_seconds(last - first)
    count = max(1, math.ceil((last - first) / length))
    starts = first + length * np.arange(count, dtype=float)
    covered = np.zeros(count)
    for start, end in spans:
        covered += np.clip(np.minimum(starts + length, end) - np.maximum(starts, start), 0, None)
    return _Grid(first, length, covered)


def _histograms(run: RunData, grid: _Grid, endpoints: list[str]) -> np.ndarray:
    out = np.zeros((len(grid.seconds), len(endpoints), N_BINS))
    position = {name: i for i, name in enumerate(endpoints)}
    t0 = run.manifest.started_at
    for batch in run.priced_batches():
        rows = batch[["start", "latency_ms", "endpoint"]].dropna()
        if not len(rows):
            continue
        endpoint = rows["endpoint"].astype(object).map(position)
        keep = endpoint.notna().to_numpy()
        window = grid.index(np.floor(rows["start"].to_numpy(float)[keep] - t0))
        flat = (window * len(endpoints) + endpoint.to_numpy()[keep].astype(np.int64)) * N_BINS
        flat += latency_bins(rows["latency_ms"].to_numpy(float)[keep])
        out += np.bincount(flat, minlength=out.size).reshape(out.shape)
    return out


def run_windows(run: RunData, ledger: Ledger) -> RunWindows:
    """The per-window sums of a priced run (windows with no priced time are dropped)."""
    costs = category_costs(ledger)
    grid = _grid(run.priced_windows, run.manifest.started_at)
    by_calls = costs.groupby("endpoint", observed=True)["calls"].sum()
    endpoints = [str(e) for e in by_calls[by_calls > 0].sort_values(ascending=False).index]
    categories = [c for c in CATEGORIES if c in costs.columns]
    shape = (len(grid.seconds), len(endpoints))
    calls, errors = np.zeros(shape), np.zeros(shape)
    cost = np.zeros((*shape, len(categories)))
    if endpoints:
        keyed = costs.assign(window=grid.index(costs["sec"].to_numpy()),
                             endpoint=costs["endpoint"].astype(object))  # fmt: skip
        sums = keyed.groupby(["window", "endpoint"])[["calls", "errors", *categories]].sum()
        mapped = sums.index.get_level_values(1).map({n: i for i, n in enumerate(endpoints)})
        keep = ~pd.isna(mapped)
        w = sums.index.get_level_values(0).to_numpy(np.int64)[keep]
        e = np.asarray(mapped[keep], dtype=np.int64)
        calls[w, e] = sums["calls"].to_numpy()[keep]
        errors[w, e] = sums["errors"].to_numpy()[keep]
        cost[w, e, :] = sums[categories].to_numpy()[keep]
    latency = _histograms(run, grid, endpoints)
    used = grid.seconds > 0
    return RunWindows(
        run_id=run.manifest.run_id,
        endpoints=tuple(endpoints),
        categories=tuple(categories),
        seconds=grid.seconds[used],
        calls=calls[used],
        errors=errors[used],
        cost=cost[used],
        latency=latency[used],
    )


@dataclass(frozen=True)
class PricedRun:
    """A run directory loaded, priced and cut into windows."""

    windows: RunWindows
    run: RunData
    ledger: Ledger
    pricing: Pricing


def price_run(run_dir: Path, price_book: str | None, billing_model: str | None) -> PricedRun:
    """Load ``run_dir``, price it (its manifest's book unless ``price_book``, with its own
    scenario's price overrides) and window it."""
    from harness.cost import price

    priced = price(run_dir, price_book, billing_model)
    run, ledger, book = priced.run, priced.ledger, priced.book
    return PricedRun(run_windows(run, ledger), run, ledger,
                     Pricing(price_book or run.manifest.price_book, billing_model,
                             book.currency))  # fmt: skip
