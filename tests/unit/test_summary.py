"""summary.json (contract keys, hand-checked numbers, CIs, billing models) and the timeline."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from artifact_factory import GIB, SIMPLE_PRICES, request, samples, service, write_book, write_run

from harness.artifacts.rundata import load_run
from harness.cost import build_ledger, load_price_book
from harness.cost.models import break_even
from harness.report.analysis import price_run
from harness.report.summary import build_summary, write_summary
from harness.report.timeline import COLUMNS, build_timeline

TOP_KEYS = {
    "status", "run_id", "scenario", "price_book", "requests", "errors", "error_rate",
    "duration_s", "achieved_rps", "asked_rps", "p50_ms", "p95_ms", "p99_ms",
    "cost_per_call_usd", "cost_per_call_direct_usd", "cost_per_million_calls_usd",
    "cost_per_call_ci95_usd", "total_cost_usd", "unattributed_share", "monthly_projection_usd",
    "categories", "billing_models", "tenants", "attribution", "endpoints", "phases",
    "telemetry",
}  # fmt: skip
ENDPOINT_KEYS = {
    "name", "method", "calls", "errors", "error_rate", "p50_ms", "p95_ms", "p99_ms",
    "cpu_ms_per_call", "bytes_out_per_call", "cost_per_call_usd", "cost_per_call_direct_usd",
    "cost_per_call_ci95_usd", "db_reads_per_call", "db_writes_per_call", "cache_hits_per_call",
    "cache_misses_per_call", "external_calls_per_call", "retries_per_call", "log_bytes_per_call",
    "cpu_ms_source", "cpu_ms_ci95", "attribution_basis",
    "cache_ops_per_call", "span_errors_per_call", "server_ms_per_call",
}  # fmt: skip
PHASES = (("warmup", 0.0, 2.0, False), ("steady", 2.0, 12.0, True))
TIMES = [float(t) for t in range(13)]


def _summary(tmp_path: Path, requests: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    usage = samples("api", TIMES, [0.5 * t for t in TIMES], rss=GIB)
    svc = service("api", entry=True, billing="usage")
    run_dir = write_run(tmp_path / "run", requests, usage, [svc], PHASES, traffic={"asked_rps": 5})
    overrides = {"db_read": 0.0, **kw}  # DB reads of a managed DB outside the stack: free here
    book = load_price_book(str(write_book(tmp_path / "books", prices=SIMPLE_PRICES)), overrides)
    run = load_run(run_dir)
    return build_summary(run, build_ledger(run, book))


def _mix() -> list[dict[str, Any]]:
    reqs = [request(3.0 + i, "/a", 10.0 * (i + 1), tenant="acme", db_reads=2) for i in range(3)]
    reqs.append(request(5.0, "/b", 70.0, tenant="globex", method="POST", error="HTTP 500"))
    reqs.append(request(1.0, "/a", 999.0, phase="warmup"))  # not priced
    return reqs


def test_contract_keys_and_hand_checked_numbers(tmp_path: Path) -> None:
    s = _summary(tmp_path, _mix(), monthly_calls=1e6)
    assert set(s) >= TOP_KEYS
    assert s["requests"] == 4 and s["errors"] == 1 and s["error_rate"] == 0.25
    assert s["duration_s"] == 10.0 and s["achieved_rps"] == 0.4 and s["asked_rps"] == 5
    latencies = [10.0, 20.0, 30.0, 70.0]
    assert s["p95_ms"] == pytest.approx(float(np.percentile(latencies, 95)))
    # usage billing over [2, 12]: 5 CPU-s ($0.005) + 10 GiB-s ($0.001), split evenly 3 : 1
    assert s["total_cost_usd"] == pytest.approx(0.006)
    assert s["cost_per_call_usd"] == pytest.approx(0.0015)
    assert s["cost_per_million_calls_usd"] == pytest.approx(1500.0)
    assert s["monthly_projection_usd"] == pytest.approx(0.0015 * 1e6)
    assert s["unattributed_share"] == 0.0
    assert s["categories"]["compute"]["usd"] == pytest.approx(0.005)
    assert s["categories"]["memory"]["per_call_usd"] == pytest.approx(0.001 / 4)
    assert set(s["categories"]) == {"compute", "memory", "egress", "database", "cache",
                                    "external", "observability", "requests", "amortized",
                                    "unattributed"}  # fmt: skip
    endpoints = {e["name"]: e for e in s["endpoints"]}
    assert all(set(e) == ENDPOINT_KEYS for e in s["endpoints"])
    a, b = endpoints["/a"], endpoints["/b"]
    assert a["cost_per_call_usd"] == pytest.approx(0.006 / 4)
    assert b["method"] == "POST" and b["error_rate"] == 1.0
    assert a["db_reads_per_call"] == 2.0 and a["cache_hits_per_call"] is None
    assert a["bytes_out_per_call"] == 0.0 and a["cpu_ms_per_call"] is None
    assert a["cpu_ms_source"] is None and a["cpu_ms_ci95"] is None
    assert s["blackbox"][0]["usable"] is False  # one designed window short of a fit
    assert s["attribution"] == {"api": "even split (usage billing)"}


def test_tenant_chargeback(tmp_path: Path) -> None:
    tenants = {t["tenant"]: t for t in _summary(tmp_path, _mix())["tenants"]}
    assert set(tenants) == {"acme", "globex"}
    assert tenants["acme"]["cost_usd"] == pytest.approx(0.006 * 3 / 4)
    assert tenants["globex"]["cost_per_call_usd"] == pytest.approx(0.006 / 4)
    assert tenants["acme"]["share_of_cost"] + tenants["globex"]["share_of_cost"] == pytest.approx(1)
    assert _summary(tmp_path / "2", [request(3.0)])["tenants"] == []


def test_phases_cover_unpriced_warmup(tmp_path: Path) -> None:
    phases = {p["name"]: p for p in _summary(tmp_path, _mix())["phases"]}
    assert phases["warmup"]["requests"] == 1 and phases["warmup"]["cost_per_call_usd"] is None
    assert phases["steady"]["requests"] == 4 and phases["steady"]["priced"]
    assert phases["steady"]["cost_per_call_usd"] == pytest.approx(0.0015)
    assert set(phases["steady"]["endpoints"]) == {"/a", "/b"}


def test_ci_is_seeded_and_brackets_the_estimate(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    reqs = [
        request(2.0 + 10 * rng.random(), "/a", 10.0, cpu_ms=float(rng.exponential(20)))
        for _ in range(200)
    ]
    first = _summary(tmp_path / "1", reqs)
    second = _summary(tmp_path / "2", reqs)
    lo, hi = first["cost_per_call_ci95_usd"]
    assert lo < first["cost_per_call_usd"] < hi
    assert first["cost_per_call_ci95_usd"] == second["cost_per_call_ci95_usd"]
    endpoint_lo, endpoint_hi = first["endpoints"][0]["cost_per_call_ci95_usd"]
    assert endpoint_lo < first["endpoints"][0]["cost_per_call_usd"] < endpoint_hi


def test_billing_models_side_by_side_with_break_even(tmp_path: Path) -> None:
    reqs = [request(2.0 + i / 10, "/a", 150.0) for i in range(100)]
    usage = samples("api", TIMES, [0.5 * t for t in TIMES], rss=GIB // 4)
    svc = service("api", entry=True, cpu=1.0, memory=GIB // 2)
    run_dir = write_run(tmp_path / "run", reqs, usage, [svc], PHASES)
    run = load_run(run_dir)
    ledger = build_ledger(run, load_price_book("gcp-cloud-run"))
    models = build_summary(run, ledger)["billing_models"]
    instance, serverless = models["models"]["instance"], models["models"]["serverless"]
    # instance: 10 s x (1 vCPU x 0.000018 + 0.5 GiB x 0.000002); serverless per call:
    # 0.2 s billed x (0.000024 + 0.5 x 0.0000025) + 0.4e-6
    assert instance["total_usd"] == pytest.approx(10 * (0.000018 + 0.5 * 0.000002))
    per_call = 0.2 * (0.000024 + 0.5 * 0.0000025) + 0.4e-6
    assert serverless["cost_per_call_usd"] == pytest.approx(per_call)
    assert models["break_even_rps"] == pytest.approx((0.000018 + 0.5 * 0.000002) / per_call)
    assert "serverless is cheaper below" in models["break_even_note"]
    assert models["models"]["usage"]["available"]


def test_break_even_edge_cases() -> None:
    unavailable = {"available": False}
    assert break_even(unavailable, unavailable)[0] is None
    inst = {"available": True, "fixed_usd_per_hour": 3.6, "variable_usd_per_call": 0.002}
    cheap = {"available": True, "fixed_usd_per_hour": 0.0, "variable_usd_per_call": 0.001}
    rate, note = break_even(inst, cheap)
    assert rate is None and note == "serverless billing is cheaper at every request rate"


def test_timeline_reconciles_to_the_ledger(tmp_path: Path) -> None:
    reqs = _mix()
    usage = samples("api", TIMES, [0.5 * t for t in TIMES], rss=GIB)
    run_dir = write_run(
        tmp_path / "run", reqs, usage, [service("api", entry=True, cpu=2.0)], PHASES
    )
    run = load_run(run_dir)
    ledger = build_ledger(run, load_price_book("opencost-default", {"db_read": 0.0}))
    timeline = build_timeline(run, ledger)
    assert tuple(timeline.columns) == COLUMNS and len(timeline) == 12
    assert timeline["burn_usd_per_hour"].sum() / 3600 == pytest.approx(ledger.totals["total"])
    assert math.isnan(timeline.loc[0, "burn_usd_per_hour"])  # warm-up is not priced
    assert timeline.loc[1, "rps"] == 1 and timeline.loc[1, "phase"] == "warmup"
    assert timeline.loc[5, "error_rate"] == 0.5 and timeline["replicas"].max() == 1
    per_call = timeline.loc[3, "burn_usd_per_hour"] / 3600 / timeline.loc[3, "rps"]
    assert timeline.loc[3, "cost_per_call_usd"] == pytest.approx(per_call)


def test_write_summary_is_strict_json(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", _mix(), samples("api", TIMES, [0.0] * 13),
                        [service("api", entry=True)], PHASES)  # fmt: skip
    summary = price_run(
        run_dir,
        str(write_book(tmp_path, prices={**SIMPLE_PRICES, "db_read": (0.0, "USD/read-unit")})),
    )
    assert json.loads((run_dir / "summary.json").read_text()) == json.loads(json.dumps(summary))
    summary["odd"] = [float("nan"), np.float64(1.5)]
    write_summary(run_dir, summary)
    assert json.loads((run_dir / "summary.json").read_text())["odd"] == [None, 1.5]
