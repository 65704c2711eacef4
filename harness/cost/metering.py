"""Metered resource use per service and priced phase, from ``usage.parquet``.

Samples of one replica, in time order, cut the timeline into intervals ``[ts_i, ts_i+1]``; an
interval carries the state of its first sample (alive, RSS, provisioned vCPU/memory) and the
CPU the cumulative counter gained over it (a counter that goes down was reset: the new value is
the gain). An interval that straddles a window edge is cut there and its CPU gain scaled by the
part inside, i.e. the cumulative counter is interpolated linearly at window edges. Time before a
replica's first sample and after its last is not seen, so not metered. Per interval:

* ``consumed_cpu_s``   CPU-seconds used (the usage model)
* ``consumed_mem_gib_s`` RSS x alive time, GiB-seconds (the usage model)
* ``inst_cpu_s``       max(provisioned vCPU x alive time, used CPU): OpenCost's max(request, usage)
* ``inst_mem_gib_s``   max(provisioned memory, RSS) x alive time
* ``alive_s``          replica-seconds alive

Provisioned values come from the sample (``cpu_limit``, ``mem_limit_bytes``), else the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.artifacts import PhaseWindow
from harness.cost.services import ServiceSpec

GIB = float(2**30)
METER_COLUMNS = ("consumed_cpu_s", "consumed_mem_gib_s", "inst_cpu_s", "inst_mem_gib_s", "alive_s")


@dataclass(frozen=True)
class Metering:
    """Per (service, phase, second since run start) sums of METER_COLUMNS, and their totals."""

    seconds: pd.DataFrame  # columns: service, phase, sec, *METER_COLUMNS
    peak_rss: Mapping[str, float]  # service -> highest RSS seen in priced windows (bytes)

    def total(self, service: str, phase: str) -> dict[str, float]:
        rows = self.seconds[(self.seconds["service"] == service) & (self.seconds["phase"] == phase)]
        return {column: float(rows[column].sum()) for column in METER_COLUMNS}


def _intervals(usage: pd.DataFrame, services: Mapping[str, ServiceSpec]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "service": usage["service"].astype(object),
            "replica": usage["replica"].astype(object).fillna(""),
            "ts": usage["ts"].to_numpy(float),
            "cpu": usage["cpu_s"].to_numpy(float),
            "rss": usage["rss_bytes"].fillna(0.0).to_numpy(float),
            "alive": usage["alive"].to_numpy(bool),
            "cpu_req": usage["cpu_limit"].to_numpy(float),
            "mem_req": usage["mem_limit_bytes"].to_numpy(float),
        }
    ).dropna(subset=["service", "ts"])
    frame = frame.sort_values(["service", "replica", "ts"], kind="stable", ignore_index=True)
    spec_cpu = frame["service"].map(lambda s: services[s].cpu if s in services else None)
    spec_mem = frame["service"].map(lambda s: services[s].memory if s in services else None)
    frame["cpu_req"] = frame["cpu_req"].fillna(spec_cpu.astype(float)).fillna(0.0)
    frame["mem_req"] = frame["mem_req"].fillna(spec_mem.astype(float)).fillna(0.0)
    following = frame.shift(-1)
    same = (following["service"] == frame["service"]) & (following["replica"] == frame["replica"])
    now, after = frame["cpu"].to_numpy(), following["cpu"].to_numpy(float)
    gain = np.where(after >= now, after - now, after)  # a counter that went down was reset
    frame["t_end"] = following["ts"]
    frame["cpu_gain"] = np.where(np.isnan(now) | np.isnan(after), 0.0, gain)
    return frame[same.to_numpy() & (frame["t_end"] > frame["ts"]).to_numpy()]


def _clip(frame: pd.DataFrame, window: PhaseWindow, t0: float) -> pd.DataFrame:
    start, end = window.start, window.end if window.end is not None else window.start
    lo = np.maximum(frame["ts"].to_numpy(), start)
    hi = np.minimum(frame["t_end"].to_numpy(), end)
    overlap = np.clip(hi - lo, 0.0, None)
    keep = overlap > 0
    part = overlap / (frame["t_end"].to_numpy() - frame["ts"].to_numpy())
    alive = frame["alive"].to_numpy()
    used = frame["cpu_gain"].to_numpy() * part
    rss = frame["rss"].to_numpy()
    out = pd.DataFrame(
        {
            "service": frame["service"].to_numpy(),
            "phase": window.name,
            "sec": np.floor(lo - t0).astype(np.int64),
            "consumed_cpu_s": used,
            "consumed_mem_gib_s": np.where(alive, rss * overlap / GIB, 0.0),
            "inst_cpu_s": np.where(
                alive, np.maximum(frame["cpu_req"].to_numpy() * overlap, used), used
            ),
            "inst_mem_gib_s": np.where(
                alive, np.maximum(frame["mem_req"].to_numpy(), rss) * overlap / GIB, 0.0
            ),
            "alive_s": np.where(alive, overlap, 0.0),
            "rss": np.where(alive, rss, 0.0),
        }
    )
    kept: pd.DataFrame = out[keep]
    return kept


def meter(
    usage: pd.DataFrame,
    windows: Sequence[PhaseWindow],
    services: Mapping[str, ServiceSpec],
    t0: float,
) -> Metering:
    """Meter every service over the priced ``windows`` (seconds counted from ``t0``)."""
    columns = ["service", "phase", "sec", *METER_COLUMNS]
    intervals = _intervals(usage, services) if len(usage) else pd.DataFrame()
    parts = [_clip(intervals, w, t0) for w in windows] if len(intervals) else []
    if not parts or all(p.empty for p in parts):
        return Metering(pd.DataFrame({c: pd.Series(dtype=float) for c in columns}), {})
    clipped = pd.concat(parts, ignore_index=True)
    peak = clipped.groupby("service")["rss"].max()
    seconds = (
        clipped.groupby(["service", "phase", "sec"], sort=True)[list(METER_COLUMNS)]
        .sum()
        .reset_index()
    )
    return Metering(seconds, {str(k): float(v) for k, v in peak.items()})
