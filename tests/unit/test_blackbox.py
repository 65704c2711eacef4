"""Black-box attribution on synthetic runs whose truth is known: the designed mix, the window
cut, the NNLS fit with its intervals, the warnings, and what the ledger and summary say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from artifact_factory import SIMPLE_PRICES, request, samples, service, write_book, write_run

from harness.artifacts.rundata import load_run
from harness.cost import build_ledger, load_price_book
from harness.cost.regression import fit_service
from harness.cost.windows import WindowData, window_cpu
from harness.report.summary import build_summary
from harness.traffic.design import MixDesign

TRUTH_MS = {"/zero": 0.3, "/cpu2": 2.0, "/cpu5": 5.0, "/cpu10": 10.0}
IDLE_CORES = 0.01
WINDOW_S = 2.0
T0 = 1_000_000.0  # a multiple of the window: the design grid starts with the phase


def _design(mode: str = "designed") -> MixDesign:
    design = MixDesign([1.0] * len(TRUTH_MS), WINDOW_S, 4.0, 0.5, seed=3, mode=mode)
    design.active_from = 0.0 if mode == "designed" else None
    return design


def _synthetic(windows: int, mode: str = "designed", rate: float = 40.0,
               seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float]:
    """Requests and 5 Hz usage samples: each call burns its endpoint's CPU at its start."""
    rng = np.random.default_rng(seed)
    design, names = _design(mode), list(TRUTH_MS)
    requests: list[dict[str, Any]] = []
    for k in range(windows):
        begin = T0 + k * WINDOW_S
        cum = design.cumulative(begin)
        weights = np.diff([0.0, *cum]) / cum[-1]
        n = rng.poisson(rate * WINDOW_S * design.rate_factor(begin))
        for start in np.sort(rng.uniform(begin, begin + WINDOW_S, n)):
            requests.append(request(float(start), str(rng.choice(names, p=weights))))
    end = T0 + windows * WINDOW_S
    times = np.arange(T0, end + 1e-9, 0.2)
    starts = np.array([r["start"] for r in requests])
    burn = np.array([TRUTH_MS[r["endpoint"]] / 1000.0 for r in requests])
    cum_cpu = [IDLE_CORES * (t - T0) + float(burn[starts < t].sum()) for t in times]
    return requests, samples("api", times.tolist(), cum_cpu), end


def _run(tmp_path: Path, windows: int, mode: str = "designed", **kw: Any) -> Path:
    requests, usage, end = _synthetic(windows, mode, **kw)
    design = _design(mode).describe()
    return write_run(tmp_path / f"run-{mode}-{windows}", requests, usage,
                     [service("api", entry=True, billing="usage")],
                     (("steady", T0, end, True),), started_at=T0, traffic={"design": design})


def _ledger(run_dir: Path, tmp_path: Path) -> Any:
    book = load_price_book(str(write_book(tmp_path / "books", prices=SIMPLE_PRICES)), {})
    return build_ledger(load_run(run_dir), book)


def test_designed_mix_recovers_cpu_per_endpoint_with_intervals(tmp_path: Path) -> None:
    ledger = _ledger(_run(tmp_path, 60), tmp_path)
    fit = ledger.inputs.fits[("api", "steady")]
    assert fit.usable and fit.r2 > 0.95 and fit.condition < 10
    for name, truth in TRUTH_MS.items():
        est = fit.endpoints[name]
        if truth >= 2.0:
            assert est.cpu_ms == pytest.approx(truth, rel=0.10), name
        assert est.low_ms <= truth <= est.high_ms, (name, est)
    assert fit.idle_cores == pytest.approx(IDLE_CORES, abs=0.01)
    compute = ledger.rows[ledger.rows["x_CostCategory"] == "compute"]
    assert set(compute["x_AttributionBasis"]) == {"regression"}
    assert (compute["x_CostPerRequestLow"] <= compute["x_CostPerRequest"]).all()
    assert (compute["x_CostPerRequest"] <= compute["x_CostPerRequestHigh"]).all()
    # attributed + unattributed = metered, whatever the fit says
    assert ledger.rows["EffectiveCost"].sum() == pytest.approx(ledger.totals["total"])


def test_summary_names_the_fitted_cpu_and_its_interval(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, 40)
    run = load_run(run_dir)
    summary = build_summary(run, _ledger(run_dir, tmp_path))
    cpu10 = next(e for e in summary["endpoints"] if e["name"] == "/cpu10")
    assert cpu10["cpu_ms_source"] == "regression"
    low, high = cpu10["cpu_ms_ci95"]
    assert low <= cpu10["cpu_ms_per_call"] <= high
    assert cpu10["cpu_ms_per_call"] == pytest.approx(10.0, rel=0.05)
    assert summary["blackbox"][0]["usable"] is True


def test_intervals_narrow_as_the_run_gets_longer(tmp_path: Path) -> None:
    short = _ledger(_run(tmp_path, 20), tmp_path).inputs.fits[("api", "steady")]
    long = _ledger(_run(tmp_path, 160), tmp_path).inputs.fits[("api", "steady")]
    for name in ("/cpu2", "/cpu5", "/cpu10"):
        width_short = short.endpoints[name].high_ms - short.endpoints[name].low_ms
        width_long = long.endpoints[name].high_ms - long.endpoints[name].low_ms
        assert width_long < 0.7 * width_short, name


def test_a_fixed_mix_is_flagged_and_split_evenly_not_guessed(tmp_path: Path) -> None:
    ledger = _ledger(_run(tmp_path, 60, mode="weighted", rate=200.0), tmp_path)
    fit = ledger.inputs.fits[("api", "steady")]
    assert not fit.usable and fit.warning is not None
    assert "did not vary" in fit.warning or "window" in fit.warning
    compute = ledger.rows[ledger.rows["x_CostCategory"] == "compute"]
    assert set(compute["x_AttributionBasis"]) == {"even-split"}


def test_a_collinear_design_says_so() -> None:
    counts = np.column_stack([np.full(30, 20.0), np.full(30, 40.0)])  # same mix every window
    data = WindowData("api", "steady", ("/a", "/b"), counts, np.full(30, 0.2), np.full(30, 1.6),
                      2.0, 0.2)
    fit = fit_service(data)
    assert not fit.usable and "did not vary" in (fit.warning or "")


def test_too_few_windows_says_how_many_are_needed(tmp_path: Path) -> None:
    fit = _ledger(_run(tmp_path, 5), tmp_path).inputs.fits[("api", "steady")]
    assert not fit.usable and "at least 8" in (fit.warning or "")


def test_window_cpu_interpolates_handles_resets_and_drops_uncovered_windows() -> None:
    import pandas as pd

    rows = samples("api", [0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 0.5, 1.5])  # reset at 3
    rows += samples("api", [0.0, 1.0, 1.5], [0.0, 0.1, 0.2], replica="api-1")  # gone at 1.5
    rows += samples("api", [4.0, 5.0], [0.0, 0.0], replica="api-2", alive=False)  # dead
    usage = pd.DataFrame(rows)
    starts, ends = np.array([0.5, 1.2, 2.5, 3.0, 4.2]), np.array([1.0, 1.8, 3.5, 3.9, 4.8])
    cpu = window_cpu(usage, "api", starts, ends)
    assert cpu[0] == pytest.approx(0.5 + 0.05)  # both replicas cover it
    assert np.isnan(cpu[1])  # api-1 stopped being sampled inside it
    assert cpu[2] == pytest.approx(0.25 + 0.5)  # half the 0.5 gained across the reset, then 1.0
    assert cpu[3] == pytest.approx(0.9)
    assert np.isnan(cpu[4])  # api-0's samples end at 4.0; api-2 is dead there


def test_design_is_the_same_in_every_process_and_changes_per_window() -> None:
    a, b = _design(), _design()
    assert a.cumulative(T0 + 0.1) == b.cumulative(T0 + 1.9)  # one window
    assert a.cumulative(T0 + 0.1) != a.cumulative(T0 + 2.1)  # the next
    assert {a.rate_factor(T0 + k * WINDOW_S) for k in range(60)} == {0.5, 1.0, 1.5}
    fixed = _design("weighted")
    fixed.activate(T0)
    assert not fixed.active and fixed.cumulative(T0 + 5) == [1.0, 2.0, 3.0, 4.0]
    auto = _design("auto")
    assert auto.rate_factor(T0) == 1.0
    auto.activate(T0)
    assert auto.active and auto.rate_factor(T0 - 1) == 1.0


def test_a_phase_without_calls_in_its_windows_is_not_fitted(tmp_path: Path) -> None:
    requests, usage, end = _synthetic(30)
    late = [r for r in requests if r["start"] > end - 0.2]  # inside the last guard only
    run_dir = write_run(tmp_path / "run", late, usage, [service("api", entry=True)],
                        (("steady", T0, end, True),), started_at=T0,
                        traffic={"design": _design().describe()})
    fit = _ledger(run_dir, tmp_path).inputs.fits[("api", "steady")]
    assert not fit.usable and fit.warning == "no calls inside the fitted windows"


def test_the_picker_follows_the_weights_the_design_has_in_force() -> None:
    import random
    from types import SimpleNamespace

    from harness.traffic.calls import _picker

    specs = [SimpleNamespace(weight=1.0, name=n) for n in "abc"]
    design = MixDesign([1.0, 1.0, 1.0], 1e9, 4.0, 0.5, seed=5, mode="designed")
    design.active_from = 0.0  # one window for the whole test
    cum = design.cumulative()
    want = np.diff([0.0, *cum]) / cum[-1]
    pick = _picker(specs, random.Random(1), design)  # type: ignore[arg-type]
    picks = [pick().name for _ in range(30_000)]
    got = np.array([picks.count(n) for n in "abc"]) / len(picks)
    assert np.allclose(got, want, atol=0.01), (got, want)
    assert not np.allclose(want, 1 / 3, atol=0.05)  # the design moved the weights
