"""Per-window observations for black-box attribution: calls per endpoint and metered CPU.

The windows are the designed mix's (``manifest.traffic.design``: window k covers
[k*w, (k+1)*w) in Unix time), each trimmed by a guard at both ends, so that a sample interval
straddling the moment the mix changed never feeds a window: inside the trimmed window the
cumulative CPU counter of each replica is interpolated linearly between its samples, which is
exact when the CPU rate is steady between two samples. The guard is 1.5 sample intervals
(at least ``MIN_GUARD_S``). A window counts only where every replica of the service that was
sampled around it covers it whole (a replica that started or died inside it would make the
window's CPU a part of its work), and it lies whole inside one priced phase.

Calls are counted by request start inside the trimmed window, per receiving service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.artifacts import PhaseWindow

MIN_GUARD_S = 0.1
GUARD_SAMPLES = 1.5


@dataclass(frozen=True)
class WindowData:
    """One service's windows in one phase: ``counts`` (windows x endpoints), CPU-seconds and
    lengths per window."""

    service: str
    phase: str
    endpoints: tuple[str, ...]
    counts: np.ndarray  # shape (windows, endpoints)
    cpu_s: np.ndarray  # shape (windows,)
    seconds: np.ndarray  # trimmed length of each window
    window_s: float
    guard_s: float
    designed: bool = True  # the windows are a designed mix's (False: a fixed mix cut in windows)


def guard_of(usage: pd.DataFrame, service: str) -> float:
    """The guard for ``service``: 1.5 times its typical (90th percentile) sample interval."""
    rows = usage[usage["service"] == service]
    gaps = [np.diff(np.sort(g["ts"].to_numpy(float))) for _, g in rows.groupby("replica")]
    flat = np.concatenate(gaps) if gaps else np.array([])
    flat = flat[flat > 0]
    typical = float(np.percentile(flat, 90)) if len(flat) else 1.0
    return max(MIN_GUARD_S, GUARD_SAMPLES * typical)


def _cumulative(ts: np.ndarray, cpu: np.ndarray) -> np.ndarray:
    """A replica's CPU counter made monotonic (a counter that went down was reset)."""
    gains = np.diff(cpu, prepend=cpu[:1])
    gains = np.where(gains >= 0, gains, cpu)
    gains[0] = 0.0
    return np.cumsum(np.nan_to_num(gains))


def window_cpu(usage: pd.DataFrame, service: str, starts: np.ndarray,
               ends: np.ndarray) -> np.ndarray:
    """CPU-seconds of ``service`` in each [start, end]; NaN where a replica does not cover it."""
    total = np.zeros(len(starts))
    covered = np.zeros(len(starts), dtype=bool)
    rows = usage[(usage["service"] == service)]
    for _, rep in rows.groupby("replica"):
        rep = rep.sort_values("ts")
        ts = rep["ts"].to_numpy(float)
        alive = rep["alive"].to_numpy(bool)
        if len(ts) < 2:
            continue
        cum = _cumulative(ts, rep["cpu_s"].to_numpy(float))
        touches = (ends > ts[0]) & (starts < ts[-1])
        whole = (starts >= ts[0]) & (ends <= ts[-1])
        # a replica dead at a sample inside the window does not cover it
        first = np.searchsorted(ts, starts, side="right") - 1
        last = np.searchsorted(ts, ends, side="left")
        dead = np.cumsum(~alive)
        died = dead[np.clip(last, 0, len(ts) - 1)] - dead[np.clip(first, 0, len(ts) - 1)] > 0
        ok = whole & ~died
        total += np.where(ok, np.interp(ends, ts, cum) - np.interp(starts, ts, cum), 0.0)
        covered |= ok
        total[touches & ~ok] = np.nan
    return np.where(covered, total, np.nan)


def _grid(phase: PhaseWindow, window_s: float, guard_s: float,
          since: float) -> tuple[np.ndarray, np.ndarray]:
    """Trimmed windows of the design grid lying whole inside ``phase`` (and after ``since``)."""
    end = phase.end if phase.end is not None else phase.start
    first = int(np.ceil(max(phase.start, since) / window_s))
    last = int(np.floor(end / window_s))
    k = np.arange(first, last, dtype=float)
    return k * window_s + guard_s, (k + 1) * window_s - guard_s


def count_calls(batches: Iterable[pd.DataFrame], replica_service: Mapping[str, str],
                entry: str, window_s: float, guards: Mapping[str, float]) -> pd.DataFrame:
    """Calls per (service, window index, endpoint) that started inside trimmed windows."""
    parts = []
    for batch in batches:
        if not len(batch):
            continue
        start = batch["start"].to_numpy(float)
        replica = batch["replica"].astype(object).to_numpy()
        service = np.array([replica_service.get(str(r), entry) if r is not None else entry
                            for r in replica], dtype=object)
        guard = np.array([guards.get(s, np.inf) for s in service])
        k = np.floor(start / window_s)
        offset = start - k * window_s
        keep = (offset >= guard) & (offset <= window_s - guard)
        frame = pd.DataFrame({"service": service[keep], "k": k[keep].astype(np.int64),
                              "endpoint": batch["endpoint"].astype(str).to_numpy()[keep]})
        parts.append(frame.groupby(["service", "k", "endpoint"]).size().rename("n"))
    if not parts:
        return pd.DataFrame({"service": [], "k": [], "endpoint": [], "n": []})
    return pd.concat(parts).groupby(level=[0, 1, 2]).sum().reset_index()


def build_windows(calls: pd.DataFrame, usage: pd.DataFrame, service: str, phase: PhaseWindow,
                  window_s: float, guard_s: float, since: float | None) -> WindowData:
    """The observations of ``service`` in ``phase``: windows with their calls and CPU."""
    starts, ends = _grid(phase, window_s, guard_s, since or 0.0)
    cpu = window_cpu(usage, service, starts, ends) if len(starts) else np.array([])
    keep = ~np.isnan(cpu)
    ks = np.rint(starts[keep] / window_s - guard_s / window_s).astype(np.int64)
    mine = calls[(calls["service"] == service) & calls["k"].isin(ks)]
    endpoints: Sequence[str] = sorted(mine["endpoint"].astype(str).unique())
    counts = np.zeros((len(ks), len(endpoints)))
    if len(mine):
        table = mine.pivot_table(index="k", columns="endpoint", values="n", aggfunc="sum",
                                 fill_value=0)
        counts = table.reindex(index=ks, columns=list(endpoints), fill_value=0).to_numpy(float)
    return WindowData(service, phase.name, tuple(endpoints), counts, cpu[keep],
                      (ends - starts)[keep], window_s, guard_s, since is not None)
