"""On-call building blocks: fault windows, burn-rate anomalies, bucketing, SVG charts."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness.report.bars import Stack, stacked_bars
from harness.report.charts import Band, Series, line_chart, x_ticks
from harness.report.oncall import anomalies, downsample, fault_windows

T0 = 1000.0


def _record(fault: str, action: str, at: float, status: str = "ok",
            error: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {"fault": fault, "kind": "downstream", "target": "payments", "action": action,
            "status": status, "start": T0 + at, "end": T0 + at + 0.5, "error": error}


def test_fault_windows_pair_inject_with_revert() -> None:
    records = [_record("slow", "inject", 10), _record("errors", "inject", 12),
               _record("slow", "revert", 20), _record("errors", "revert", 25, "failed", "boom"),
               _record("kill", "inject", 30)]  # fmt: skip
    windows = fault_windows(records, T0, run_end=T0 + 40)
    assert [(w.name, w.start, w.end, w.status, w.error) for w in windows] == [
        ("slow", 10, 20.5, "ok", None),
        ("errors", 12, 25.5, "failed", "boom"),
        ("kill", 30, 40, "not reverted", None),
    ]


def _timeline(costs: list[float], phases: list[str] | None = None) -> pd.DataFrame:
    n = len(costs)
    cost = np.array(costs, dtype=float)
    return pd.DataFrame({
        "t": np.arange(n), "phase": phases or ["baseline"] * n, "rps": np.full(n, 10.0),
        "p95_ms": np.full(n, 5.0), "error_rate": np.zeros(n), "replicas": np.ones(n),
        "cost_per_call_usd": cost, "burn_usd_per_hour": cost * 10 * 3600,
    })  # fmt: skip


def test_sustained_excursions_are_flagged_short_or_small_ones_are_not() -> None:
    costs = [1.0] * 20 + [4.0] * 6 + [1.0] * 10 + [4.0] * 4 + [1.0] * 5 + [2.9] * 10
    costs[22] = float("nan")  # a second without calls breaks a run
    costs[46:] = [1.0] * (len(costs) - 46)
    costs[28:34] = [5.0] * 6
    windows = fault_windows([_record("f", "inject", 29), _record("f", "revert", 31)], T0, T0 + 60)
    found = anomalies(_timeline(costs), windows)
    assert [(a.metric, a.start, a.end, a.faults) for a in found] == [
        ("burn rate", 28, 34, ("f",)),
        ("cost per call", 28, 34, ("f",)),
    ]
    assert found[1].baseline == 1.0 and found[1].peak_ratio == 5.0


def test_baseline_comes_from_the_baseline_phase() -> None:
    costs = [1.0] * 10 + [3.5] * 30  # the later phase is most of the run
    phases = ["baseline"] * 10 + ["fault"] * 30
    found = anomalies(_timeline(costs, phases), [])
    assert [(a.metric, a.start, a.end) for a in found][:1] == [("burn rate", 10, 40)]
    assert anomalies(_timeline(costs, ["steady"] * 40), []) == []  # median is 3.5: normal


def test_downsample_bounds_points_and_keeps_cost_per_call_exact() -> None:
    n = 10_000
    frame = _timeline([2e-6] * n)
    frame.loc[:4999, "rps"] = 30.0  # first half: 3x the calls at the same cost per call
    frame["burn_usd_per_hour"] = frame["cost_per_call_usd"] * frame["rps"] * 3600
    frame.loc[7, "p95_ms"] = 99.0
    small = downsample(frame, max_points=500)
    assert len(small) == 500 and small["t"].iloc[1] == 20
    assert small["cost_per_call_usd"].to_numpy() == pytest.approx(2e-6)
    assert small["p95_ms"].iloc[0] == 99.0 and small["rps"].iloc[0] == 30.0
    assert len(downsample(frame.head(300), max_points=500)) == 300


def test_line_chart_breaks_at_gaps_and_escapes() -> None:
    svg = line_chart("<b>cost</b>", "$/h", [0, 1, 2, 3, 4],
                     [Series("a&b", [1.0, None, 2.0, 3.0, float("nan")], "k")],
                     [Band(1, 3, "<script>x</script>", "fault")])  # fmt: skip
    path = re.search(r' d="([^"]*)"', str(svg))
    assert path and path.group(1).count("M") == 2 and path.group(1).count("L") == 1
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;cost" in svg
    assert 'data-keys="k"' in svg
    assert "no data" in line_chart("empty", "x", [0, 1], [Series("a", [None, None])])


def test_step_series_draw_horizontal_then_vertical() -> None:
    svg = str(line_chart("replicas", "n", [0, 1, 2], [Series("r", [1, 1, 2], "r", step=True)]))
    path = re.search(r' d="([^"]*)"', svg)
    assert path and "L" not in path.group(1) and "V" in path.group(1)


def test_stacked_bars_split_by_share() -> None:
    svg = str(stacked_bars([Stack("<i>x</i>", {"compute": 3.0, "external": 1.0}, "$4")], "t"))
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="30" width="([\d.]+)"', svg)]
    assert widths[0] == pytest.approx(3 * widths[1])
    assert "<i>" not in svg and "&lt;i&gt;x" in svg
    assert "no cost" in stacked_bars([Stack("a", {}, "")], "t")


def test_time_ticks_are_round() -> None:
    assert x_ticks(0, 59) == [0, 10, 20, 30, 40, 50]
    assert x_ticks(0, 609) == [0, 120, 240, 360, 480, 600]
    assert len(x_ticks(0, 86_399)) <= 6 and x_ticks(3, 7) == [3, 4, 5, 6, 7]
