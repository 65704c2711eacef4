"""The on-call view's context: the 1-second timeline, fault windows and burn-rate anomalies.

Fault windows come from ``faults.jsonl`` (inject start to revert end); warm-up from the
manifest's unpriced phases; crashed replicas from the manifest's ``crashes`` (a marker on every
chart, and a list with each replica's last output). An anomaly is a run of at least
``SUSTAIN_S`` consecutive seconds in which a cost metric (cost per call, burn rate) stays above
``FACTOR`` x its baseline: the median over the ``baseline`` phase, or over every priced second
when there is no such phase.
Anomalies are found on the full 1-second timeline; the charts show at most ``MAX_POINTS``
points (longer runs are bucketed: means for rates, the maximum for p95 and replicas, cost per
call as bucket cost / bucket calls), so the report's size does not grow with the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.artifacts import Manifest
from harness.report.charts import Band, Mark, Series, line_chart

__all__ = ["Anomaly", "CrashNote", "FaultWindow", "anomalies", "crash_notes", "downsample",
           "fault_windows", "oncall_context"]  # fmt: skip

MAX_POINTS = 720
FACTOR = 3.0
SUSTAIN_S = 5
BASELINE_PHASE = "baseline"
REPLICA_WINDOW_S = 2
METRICS = (("cost per call", "cost_per_call_usd"), ("burn rate", "burn_usd_per_hour"))


@dataclass(frozen=True)
class FaultWindow:
    """One injected fault, in seconds since the run started."""

    name: str
    kind: str
    target: str
    start: float
    end: float
    status: str  # "ok" when both inject and revert succeeded
    error: str | None


@dataclass(frozen=True)
class Anomaly:
    """A sustained excursion of a cost metric above FACTOR x its baseline."""

    metric: str
    start: float
    end: float
    baseline: float
    peak_ratio: float
    faults: tuple[str, ...]  # fault windows it overlaps


@dataclass(frozen=True)
class CrashNote:
    """A replica that died on its own, in seconds since the run started."""

    at: float
    service: str
    replica: str
    exit_code: int | None
    oom_killed: bool
    phase: str
    last_output: str

    @property
    def how(self) -> str:
        code = "unknown exit code" if self.exit_code is None else f"exit code {self.exit_code}"
        return f"{code}, OOM-killed" if self.oom_killed else code

    def mark(self) -> Mark:
        label = f"✕ {self.replica}" + (" OOM" if self.oom_killed else "")
        return Mark(self.at, label, f"{self.replica} ({self.service}) crashed at "
                    f"{self.at:.1f} s: {self.how}")  # fmt: skip


def crash_notes(manifest: Manifest) -> list[CrashNote]:
    """The manifest's crash records, in time order (missing fields read as unknown)."""
    out = []
    for c in manifest.crashes:
        code = c.get("exit_code")
        out.append(CrashNote(
            at=float(c.get("at") or manifest.started_at) - manifest.started_at,
            service=str(c.get("service") or "?"), replica=str(c.get("replica") or "?"),
            exit_code=code if isinstance(code, int) else None,
            oom_killed=c.get("oom_killed") is True, phase=str(c.get("phase") or ""),
            last_output=str(c.get("last_output") or "")))  # fmt: skip
    return sorted(out, key=lambda n: n.at)


def _close(opened: dict[str, Any], revert: dict[str, Any] | None, t0: float,
           run_end: float) -> FaultWindow:  # fmt: skip
    bad = [r for r in (opened, revert) if r is not None and r.get("status") != "ok"]
    end = float(revert.get("end") or revert.get("start") or run_end) if revert else run_end
    return FaultWindow(
        name=str(opened.get("fault") or "fault"), kind=str(opened.get("kind") or ""),
        target=str(opened.get("target") or ""), start=float(opened.get("start") or t0) - t0,
        end=max(end, float(opened.get("start") or t0)) - t0,
        status="ok" if revert is not None and not bad else
        "not reverted" if revert is None else str(bad[0].get("status")),
        error=next((str(r["error"]) for r in bad if r.get("error")), None),
    )  # fmt: skip


def fault_windows(records: list[dict[str, Any]], t0: float, run_end: float) -> list[FaultWindow]:
    """Pair each fault's inject record with its revert record (in file order)."""
    opened: dict[str, dict[str, Any]] = {}
    out: list[FaultWindow] = []
    for record in records:
        name = str(record.get("fault") or "fault")
        if record.get("action") == "inject":
            if name in opened:  # injected again without a revert in between
                out.append(_close(opened.pop(name), None, t0, run_end))
            opened[name] = record
        elif record.get("action") == "revert" and name in opened:
            out.append(_close(opened.pop(name), record, t0, run_end))
    out += [_close(r, None, t0, run_end) for r in opened.values()]
    return sorted(out, key=lambda w: w.start)


def _baseline(timeline: pd.DataFrame, column: str) -> float | None:
    values = timeline[column]
    in_baseline = timeline["phase"] == BASELINE_PHASE
    if in_baseline.any() and values[in_baseline].notna().any():
        values = values[in_baseline]
    median = float(values.median()) if values.notna().any() else math.nan
    return median if math.isfinite(median) and median > 0 else None


def _runs(flag: np.ndarray) -> list[tuple[int, int]]:
    """(first, last + 1) index pairs of the runs of True in ``flag``."""
    edges = np.diff(np.concatenate(([0], flag.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def anomalies(timeline: pd.DataFrame, faults: list[FaultWindow]) -> list[Anomaly]:
    """Sustained cost excursions (see the module docstring), in time order."""
    out = []
    t = timeline["t"].to_numpy(float)
    for label, column in METRICS:
        base = _baseline(timeline, column)
        if base is None:
            continue
        ratio = timeline[column].to_numpy(float) / base
        for first, stop in _runs(np.nan_to_num(ratio, nan=0.0) > FACTOR):
            if stop - first < SUSTAIN_S:
                continue
            start, end = float(t[first]), float(t[stop - 1]) + 1
            hits = tuple(f.name for f in faults if f.start < end and f.end > start)
            out.append(Anomaly(label, start, end, base, float(ratio[first:stop].max()), hits))
    return sorted(out, key=lambda a: (a.start, a.metric))


def downsample(timeline: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """At most ``max_points`` rows (see the module docstring); short timelines unchanged."""
    if len(timeline) <= max_points:
        return timeline
    size = math.ceil(len(timeline) / max_points)
    frame = timeline.assign(
        bucket=timeline["t"].to_numpy(np.int64) // size,
        errors=timeline["error_rate"].fillna(0) * timeline["rps"],
        cost=timeline["burn_usd_per_hour"] / 3600.0,
        priced_calls=timeline["rps"].where(timeline["burn_usd_per_hour"].notna()),
    )
    grouped = frame.groupby("bucket", sort=True)
    rps_sum = grouped["rps"].sum()
    out = pd.DataFrame({
        "t": grouped["t"].first(), "phase": grouped["phase"].first(), "rps": grouped["rps"].mean(),
        "p95_ms": grouped["p95_ms"].max(),
        "error_rate": (grouped["errors"].sum() / rps_sum).where(rps_sum > 0),
        "replicas": grouped["replicas"].max(),
        "cost_per_call_usd": grouped["cost"].sum(min_count=1) / grouped["priced_calls"].sum(),
        "burn_usd_per_hour": grouped["burn_usd_per_hour"].mean(),
    })  # fmt: skip
    out["cost_per_call_usd"] = out["cost_per_call_usd"].replace([np.inf, -np.inf], np.nan)
    return out.reset_index(drop=True)


def _smooth_replicas(timeline: pd.DataFrame) -> pd.DataFrame:
    """Replicas seen alive within REPLICA_WINDOW_S: the meter samples about once a second,
    so a second without a sample would otherwise read as zero replicas."""
    seen = timeline["replicas"].rolling(REPLICA_WINDOW_S, min_periods=1).max()
    return timeline.assign(replicas=seen)


def _bands(manifest: Manifest, faults: list[FaultWindow]) -> list[Band]:
    t0 = manifest.started_at
    bands = [Band(p.start - t0, (p.end or p.start) - t0, p.name, "warmup")
             for p in manifest.phases if not p.priced]  # fmt: skip
    return bands + [Band(f.start, f.end, f.name, "fault") for f in faults]


def _values(frame: pd.DataFrame, column: str, scale: float = 1.0) -> list[float | None]:
    return [None if pd.isna(v) else float(f"{float(v) * scale:.4g}") for v in frame[column]]


ChartSpec = tuple[str, str, list[Series], str | None]  # title, unit, series, anomaly metric


def _chart_series(frame: pd.DataFrame, cost_base: float | None) -> list[ChartSpec]:
    n = len(frame)
    cost = [Series("cost per 1M calls", _values(frame, "cost_per_call_usd", 1e6), "cost")]
    if cost_base is not None:
        limit = float(f"{cost_base * FACTOR * 1e6:.4g}")
        cost.append(Series(f"{FACTOR:g}× baseline", [limit] * n, "limit"))
    return [
        ("Throughput", "req/s", [Series("req/s", _values(frame, "rps"), "rps")], None),
        ("Latency p95", "ms", [Series("p95", _values(frame, "p95_ms"), "p95")], None),
        ("Error rate", "%", [Series("errors", _values(frame, "error_rate", 100), "err")], None),
        ("Replicas alive", f"billed, seen within {REPLICA_WINDOW_S} s",
         [Series("replicas", _values(frame, "replicas"), "replicas", step=True)], None),
        ("Cost per call", "USD per 1M calls", cost, "cost per call"),
        ("Cost burn rate", "USD per hour",
         [Series("burn", _values(frame, "burn_usd_per_hour"), "burn")], "burn rate"),
    ]  # fmt: skip


def oncall_context(timeline: pd.DataFrame, manifest: Manifest,
                   records: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """Template variables of the on-call view (charts, their data, faults, anomalies)."""
    run_end = manifest.ended_at or manifest.started_at + len(timeline)  # a crashed run: no end
    faults = fault_windows(records, manifest.started_at, run_end)
    crashes = crash_notes(manifest)
    if timeline.empty:
        return {"charts": [], "data": None, "faults": faults, "anomalies": [], "bucket_s": 1,
                "crashes": crashes}
    found = anomalies(timeline, faults)
    frame = downsample(_smooth_replicas(timeline))
    xs = [float(x) for x in frame["t"]]
    bands = _bands(manifest, faults)
    flagged = {m: [Band(a.start, a.end, f"{a.peak_ratio:.1f}× baseline", "anomaly")
                   for a in found if a.metric == m] for m, _ in METRICS}  # fmt: skip
    charts, data = [], {}
    specs = _chart_series(frame, _baseline(timeline, "cost_per_call_usd"))
    marks = [c.mark() for c in crashes]
    for title, unit, series, metric in specs:
        extra = flagged.get(metric, []) if metric else []
        charts.append(line_chart(title, unit, xs, series, [*bands, *extra], marks))
        data.update({s.key: {"label": s.label, "unit": unit, "values": list(s.values)}
                     for s in series})  # fmt: skip
    phases = [None if pd.isna(p) else str(p) for p in frame["phase"]]
    return {"charts": charts, "data": {"t": xs, "phase": phases, "series": data},
            "faults": faults, "anomalies": found, "bucket_s": _bucket(timeline, frame),
            "crashes": crashes}


def _bucket(timeline: pd.DataFrame, frame: pd.DataFrame) -> int:
    return max(1, math.ceil(len(timeline) / max(len(frame), 1)))
