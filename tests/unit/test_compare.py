"""Compare: window sums of a real (synthetic) run, bootstrap statistics, baselines, outputs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from gate_factory import sample_run, windows

from harness.compare import compare_json, compare_sources, judge
from harness.compare.baselines import (
    WINDOWS,
    BaselineError,
    dump_windows,
    list_baselines,
    load_sources,
    read_windows,
    resolve,
    save_baseline,
)
from harness.compare.stats import (
    OVERALL,
    Contrast,
    Estimate,
    Scope,
    Side,
    interval,
    percentile,
    pool,
    relative,
    resample_counts,
)
from harness.compare.windows import Pricing, latency_bins, price_run, window_seconds
from harness.cost.breakdown import request_costs
from harness.gate.render import compare_html, compare_markdown, files_for, write_compare

BASE = {"GET /cpu": (2e-7, 20.0), "GET /cheap": (1e-8, 2.0)}


def test_run_windows_hold_the_ledger_and_every_priced_request(tmp_path: Path) -> None:
    run_dir, book = sample_run(tmp_path)
    priced = price_run(run_dir, book, "usage")
    w = priced.windows
    assert w.endpoints == ("/a", "/b") and w.categories[-1] == "unattributed"
    assert w.seconds.sum() == pytest.approx(10.5) and w.n_windows == 11
    assert w.calls.sum(axis=0).tolist() == [42, 21] and w.errors.sum() == 3
    costs = request_costs(priced.ledger).groupby("endpoint", observed=True)
    full = costs["full_cost"].sum()
    direct = costs["direct_cost"].sum()
    assert w.cost.sum(axis=(0, 2)) == pytest.approx([full["/a"], full["/b"]])
    assert w.cost[:, :, :-1].sum(axis=(0, 2)) == pytest.approx([direct["/a"], direct["/b"]])
    assert w.latency.sum(axis=(0, 2)).tolist() == [42, 21]  # the warm-up request is not priced
    assert priced.pricing == Pricing(book, "usage", "USD")


def test_window_length_and_latency_bins() -> None:
    assert window_seconds(15) == 1 and window_seconds(60) == 1 and window_seconds(600) == 10
    bins = latency_bins(np.array([0.0, 0.01, 1.0, 1.06, 1e9]))
    assert bins.tolist() == [0, 0, 80, 81, 319]


def test_percentile_from_histogram_is_close_to_exact() -> None:
    rng = np.random.default_rng(3)
    sample = 20.0 * np.exp(0.5 * rng.standard_normal(20_000))
    hist = np.bincount(latency_bins(sample), minlength=320)[None, :].astype(float)
    lo = int(np.flatnonzero(hist[0])[0])
    for q in (0.5, 0.95, 0.99):
        exact = float(np.quantile(sample, q))
        assert percentile(hist[:, lo:], q, lo)[0] == pytest.approx(exact, rel=0.03)
    assert np.isnan(percentile(np.zeros((1, 5)), 0.5, 0)[0])


def test_resampling_one_and_two_levels() -> None:
    one = resample_counts([10], 200, (0,))
    assert one.shape == (200, 10) and (one.sum(axis=1) == 10).all()
    two = resample_counts([10, 4], 200, (0,))
    assert two.shape == (200, 14)
    assert set(two[:, :10].sum(axis=1) / 10 + two[:, 10:].sum(axis=1) / 4) == {2.0}
    assert (resample_counts([10], 5, (1,)) == resample_counts([10], 5, (1,))).all()


def test_relative_and_interval_conventions() -> None:
    out = relative(np.array([2.0, 0.0, 1.0, np.nan]), np.array([1.0, 0.0, 0.0, 1.0]))
    assert out[0] == 1.0 and out[1] == 0.0 and np.isinf(out[2]) and np.isnan(out[3])
    assert interval(np.full(10, np.nan), 0.95) is None
    draws = np.arange(1001, dtype=float)
    assert interval(draws, 0.95) == pytest.approx((25.0, 975.0))


def test_overall_is_at_the_base_mix_and_equals_the_plain_ratio_at_the_point() -> None:
    a = windows("a", BASE, seed=1)
    side = Side(pool([a]), seed=0)
    point, draws = side.value("cost_per_call", OVERALL, side.mix())
    assert point == pytest.approx(a.cost.sum() / a.calls.sum())
    shifted = windows("b", BASE, seed=1)
    shifted.calls[:, 1] *= 3  # three times the cheap calls, same cost per call
    shifted.cost[:, 1] *= 3
    contrast = Contrast(side, Side(pool([shifted]), seed=1), 0.95)
    assert contrast.estimate("cost_per_call", OVERALL).rel == pytest.approx(0.0, abs=1e-12)


def test_two_level_bootstrap_widens_when_repeats_disagree() -> None:
    one = Side(pool([windows("a", BASE, seed=1)]), seed=0)
    apart = {k: (c * 1.2, lat) for k, (c, lat) in BASE.items()}
    two = Side(pool([windows("a", BASE, seed=1), windows("c", apart, seed=4)]), seed=0)
    scope = Scope("endpoint", "GET /cpu")
    width_one = np.ptp(interval(one.value("cost_per_call", scope, one.mix())[1], 0.95))
    width_two = np.ptp(interval(two.value("cost_per_call", scope, two.mix())[1], 0.95))
    assert width_two > 3 * width_one


def test_judge() -> None:
    def est(metric: str, rel: float, lo: float, hi: float) -> Estimate:
        return Estimate(metric, OVERALL, 1.0, 1.0 + rel, None, rel, None, rel, (lo, hi))

    assert judge(est("cost_per_call", 0.1, 0.05, 0.15)) == "worse"
    assert judge(est("throughput", 0.1, 0.05, 0.15)) == "better"
    assert judge(est("cost_per_call", 0.01, 0.005, 0.015)) == "same"  # under min_effect
    assert judge(est("cost_per_call", 0.1, -0.05, 0.2)) == "same"
    assert judge(Estimate("p95_ms", OVERALL, None, 3.0, None)) == "n/a"


# --- baselines ---------------------------------------------------------------------------


def test_windows_file_round_trip_and_damage(tmp_path: Path) -> None:
    runs = [windows("a", BASE, seed=1, errors=0.1), windows("b", BASE, n=5, seed=2)]
    path = tmp_path / WINDOWS
    path.write_text(dump_windows([(r, "completed") for r in runs], Pricing("x", None, "EUR"),
                                 "shop"), encoding="utf-8")  # fmt: skip
    header, again = read_windows(path)
    assert header["currency"] == "EUR" and [r.run_id for r in again] == ["a", "b"]
    for old, new in zip(runs, again, strict=True):
        assert (old.calls == new.calls).all() and (old.latency == new.latency).all()
        assert (old.errors == new.errors).all()
        assert new.cost == pytest.approx(old.cost, rel=1e-5)  # 6 significant digits
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(BaselineError, match="truncated"):
        read_windows(path)
    path.write_text("\n".join(lines[:3] + ['{"run": 0, "s"']), encoding="utf-8")
    with pytest.raises(BaselineError, match="line 4 is damaged"):
        read_windows(path)
    path.write_text('{"format": "other"}\n', encoding="utf-8")
    with pytest.raises(BaselineError, match="not a baseline windows file"):
        read_windows(path)


def test_save_list_resolve_and_load_a_baseline(tmp_path: Path) -> None:
    run_dir, book = sample_run(tmp_path)
    root = tmp_path / "baselines"
    saved = save_baseline("main", [run_dir], root, book, "usage")
    assert sorted(p.name for p in saved.iterdir()) == ["manifest.json", "summary.json", WINDOWS]
    assert sum(p.stat().st_size for p in saved.iterdir()) < 20_000
    with pytest.raises(BaselineError, match="exists; use --force"):
        save_baseline("main", [run_dir], root, book, "usage")
    with pytest.raises(BaselineError, match="must match"):
        save_baseline("../x", [run_dir], root, book)
    assert resolve("main", root) == saved and resolve(run_dir, root) == run_dir
    with pytest.raises(BaselineError, match=r"no such run directory or baseline .*: main\)"):
        resolve("mian", root)
    [info] = list_baselines(root)
    assert info.name == "main" and info.requests == 63 and info.pricing == f"{book} / usage"
    stored, fresh = load_sources(["main", run_dir], root=root)
    assert stored.kind == "baseline" and fresh.pricing == stored.pricing
    assert stored.runs[0].cost == pytest.approx(fresh.runs[0].cost, rel=1e-5)
    with pytest.raises(BaselineError, match="was priced with"):
        load_sources(["main", run_dir], billing_model="instance", root=root)


def test_save_refuses_failed_runs_and_redacts_secrets(tmp_path: Path) -> None:
    run_dir, book = sample_run(tmp_path)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["scenario"]["target"] = {"services": {"api": {"env": {"DB_PASSWORD": "hunter2",
                                                                    "MODE": "fast"}}}}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    saved = save_baseline("ok", [run_dir], tmp_path / "b", book)
    env = json.loads((saved / "manifest.json").read_text())["scenario"]["target"]["services"]
    assert env["api"]["env"] == {"DB_PASSWORD": "<redacted>", "MODE": "fast"}
    manifest["status"] = "failed"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BaselineError, match="status failed"):
        save_baseline("bad", [run_dir], tmp_path / "b", book)


# --- compare -----------------------------------------------------------------------------


def test_compare_real_runs_finds_the_cpu_regression(tmp_path: Path) -> None:
    base, book = sample_run(tmp_path, "base")
    worse, _ = sample_run(tmp_path, "worse", cpu_ms=26.0)
    report = compare_sources(load_sources([base, worse], book, "usage"))
    [comparison] = report.comparisons
    rows = {(r.estimate.scope.name, r.estimate.metric): r for r in comparison.rows}
    cpu = rows[("/a", "direct_cost_per_call")]
    assert cpu.verdict == "worse" and cpu.estimate.rel == pytest.approx(0.3, abs=0.02)
    assert rows[("/b", "cost_per_call")].verdict in ("same", "better")
    data = json.loads(json.dumps(compare_json(report), allow_nan=False))
    assert data["comparisons"][0]["other"]["label"] == "worse"


def test_outputs_escape_names_and_show_variants_side_by_side(tmp_path: Path) -> None:
    nasty = "<img src=x onerror=alert(1)>|"
    base = {**BASE, nasty: (1e-7, 5.0)}
    sources = []
    for i, factor in enumerate((1.0, 1.3, 0.8)):
        costs = {k: (c * factor, lat) for k, (c, lat) in base.items()}
        run_dir, book = sample_run(tmp_path, f"run{i}")
        [source] = load_sources([run_dir], book)
        sources.append(replace(source, runs=(windows(f"r{i}", costs, seed=i),)))
    report = compare_sources(sources)
    html = compare_html(report)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;|" in html
    assert 'id="side-by-side"' in html and html.count('class="worse"') > 0
    text = compare_markdown(report)
    assert "<img" not in text and "&lt;img" in text and "\\|" in text
    assert text.count("#### ") == 2
    files = files_for(tmp_path / "out" / "cmp.html")
    write_compare(report, files)
    assert json.loads(files.json.read_text())["format"] == "cost-harness-compare/1"
    assert files.markdown.read_text(encoding="utf-8") == text
