"""Hand-computed ledgers on small synthetic runs (exact dollars).

The test book costs $0.001 per vCPU-second, $0.0001 per GiB-second and $0.1 per GB of egress,
so every expected number below can be checked with a pencil.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from artifact_factory import GIB, SIMPLE_PRICES, request, samples, service, write_book, write_run

from harness.artifacts.rundata import load_run
from harness.cost import build_ledger, load_price_book, write_ledger
from harness.cost.ledger import COLUMNS, LEDGER_CSV, LEDGER_PARQUET, Ledger
from harness.errors import InputError, PriceBookError
from harness.report.analysis import price_run

TEN = [float(t) for t in range(11)]  # samples at 0..10 s: the priced window [0, 10]


def _ledger(run_dir: Path, tmp_path: Path, model: str | None = None, **overrides: Any) -> Ledger:
    book = load_price_book(str(write_book(tmp_path / "books", prices=SIMPLE_PRICES)), overrides)
    return build_ledger(load_run(run_dir), book, model)


def _by(ledger: Ledger, *keys: str) -> dict[Any, float]:
    """Σ EffectiveCost per key combination (a missing key value is None)."""
    rows = ledger.rows.astype({k: object for k in keys}).fillna({k: "-" for k in keys})
    sums = rows.groupby(list(keys))["EffectiveCost"].sum()
    return {
        tuple(None if x == "-" else x for x in k) if isinstance(k, tuple) else k: float(v)
        for k, v in sums.items()
    }


def _latency_run(tmp_path: Path, billing: str = "usage") -> Path:
    """/a: 3 calls of 10 ms (tenant acme), /b: 1 call of 70 ms (globex); 5 CPU-s, 1 GiB RSS."""
    requests = [request(1.0 + i, "/a", 10.0, tenant="acme") for i in range(3)]
    requests.append(request(5.0, "/b", 70.0, tenant="globex"))
    usage = samples("api", TEN, [0.5 * t for t in TEN], rss=GIB)
    svc = service("api", entry=True, billing=billing, cpu=None, memory=None)
    return write_run(tmp_path / "run", requests, usage, [svc])


def test_usage_billing_without_cpu_telemetry_splits_evenly(tmp_path: Path) -> None:
    """No CPU per request and no designed mix to fit: an even split, named as such (latency
    is not a CPU weight: /b's 70 ms of waiting says nothing about its CPU)."""
    ledger = _ledger(_latency_run(tmp_path), tmp_path)
    costs = _by(ledger, "x_Endpoint", "x_CostCategory")
    # compute 5 vCPU-s x $0.001 = $0.005, memory 10 GiB-s x $0.0001 = $0.001; calls 3 : 1
    assert costs[("/a", "compute")] == pytest.approx(0.00375)
    assert costs[("/b", "compute")] == pytest.approx(0.00125)
    assert costs[("/a", "memory")] == pytest.approx(0.00075)
    assert costs[("/b", "memory")] == pytest.approx(0.00025)
    assert ledger.totals["total"] == pytest.approx(0.006)
    assert ledger.totals["unattributed"] == 0.0
    methods = set(ledger.rows["x_AttributionMethod"])
    assert methods == {"even split", "even split; memory follows CPU weights"}
    assert set(ledger.rows["x_AttributionBasis"]) == {"even-split"}
    assert ledger.rows["x_CostPerRequestLow"].isna().all()


def test_instance_billing_with_measured_cpu(tmp_path: Path) -> None:
    """2 vCPU / 2 GiB provisioned for 10 s; requests measured 2 CPU-s of the 20 billed."""
    requests = [request(1.0 + i, "/a", 5.0, cpu_ms=250.0) for i in range(4)]
    requests += [request(2.0 + i, "/b", 5.0, cpu_ms=500.0) for i in range(2)]
    usage = samples("api", TEN, [0.3 * t for t in TEN], rss=GIB)
    svc = service("api", entry=True, cpu=2.0, memory=2 * GIB)
    ledger = _ledger(write_run(tmp_path / "run", requests, usage, [svc]), tmp_path)
    costs = _by(ledger, "x_Endpoint", "x_CostCategory")
    assert costs[("/a", "compute")] == pytest.approx(0.001)  # 1 CPU-s
    assert costs[("/b", "compute")] == pytest.approx(0.001)
    assert costs[("/a", "memory")] == pytest.approx(0.0001)  # 10 % of 20 GiB-s, half each
    assert costs[(None, "unattributed")] == pytest.approx(0.018 + 0.0018)
    assert ledger.totals["total"] == pytest.approx(0.022)
    full = ledger.rows.groupby("x_Endpoint")["x_FullCost"].sum()
    assert full["/a"] == pytest.approx(0.011) and full["/b"] == pytest.approx(0.011)
    assert ledger.rows["x_FullCost"].sum() == pytest.approx(0.022)
    compute = ledger.rows[
        (ledger.rows["x_Endpoint"] == "/a") & (ledger.rows["x_CostCategory"] == "compute")
    ]
    assert compute["ConsumedQuantity"].item() == pytest.approx(1.0)  # vCPU-seconds
    assert compute["PricingQuantity"].item() == pytest.approx(1.0 / 3600)  # vCPU-hours
    assert compute["x_CostPerRequest"].item() == pytest.approx(0.001 / 4)
    assert compute["x_AttributionMethod"].item() == "measured: request CPU (Server-Timing)"


def test_cache_and_database_by_share_of_operations(tmp_path: Path) -> None:
    requests = [
        request(1.0 + i, "/a", 10.0, cache_hits=3, cache_misses=1, db_reads=1, db_writes=0)
        for i in range(2)
    ]
    requests.append(request(4.0, "/b", 10.0, cache_hits=0, cache_misses=2, db_reads=2, db_writes=4))
    usage = samples("api", TEN, [0.1 * t for t in TEN], rss=0)
    usage += samples("cache", TEN, [0.2 * t for t in TEN], rss=0, role="cache")
    usage += samples("db", TEN, [0.4 * t for t in TEN], rss=0, role="database")
    services = [
        service("api", entry=True, billing="usage"),
        service("cache", "cache", billing="usage"),
        service("db", "database", billing="usage"),
    ]
    ledger = _ledger(write_run(tmp_path / "run", requests, usage, services), tmp_path)
    costs = _by(ledger, "ServiceName", "x_Endpoint")
    assert costs[("cache", "/a")] == pytest.approx(0.0016)  # 8 of 10 cache ops x $0.002
    assert costs[("cache", "/b")] == pytest.approx(0.0004)
    assert costs[("db", "/a")] == pytest.approx(0.001)  # 2 of 8 DB ops x $0.004
    assert costs[("db", "/b")] == pytest.approx(0.003)
    assert costs[("api", "/a")] == pytest.approx(0.001 * 2 / 3)  # latency 20 : 10
    categories = ledger.totals
    assert categories["cache"] == pytest.approx(0.002)
    assert categories["database"] == pytest.approx(0.004)
    assert categories["compute"] == pytest.approx(0.001)
    methods = ledger.rows.groupby("ServiceName")["x_AttributionMethod"].first()
    assert methods["cache"] == "ops-share: cache operations"
    assert methods["db"] == "ops-share: database operations"


def test_usage_priced_items_and_missing_vendor_price(tmp_path: Path) -> None:
    requests = [
        request(1.0, "/a", bytes_out=600_000_000, log_bytes=GIB // 2, external="geo=2"),
        request(2.0, "/a", bytes_out=400_000_000, log_bytes=GIB // 2, external="geo=1;pay=1"),
    ]
    run_dir = write_run(tmp_path / "run", requests, [], [service("api", entry=True)])
    with pytest.raises(PriceBookError, match="no 'external:geo' price.*3 calls to geo"):
        _ledger(run_dir, tmp_path)
    ledger = _ledger(run_dir, tmp_path, **{"external:geo": 0.005, "external:pay": 0.25})
    totals = ledger.totals
    assert totals["egress"] == pytest.approx(0.1)  # 1 GB
    assert totals["observability"] == pytest.approx(0.5)  # 1 GiB at $0.5/GiB
    assert totals["external"] == pytest.approx(3 * 0.005 + 0.25)
    vendors = _by(ledger, "ServiceName")
    assert vendors["pay"] == pytest.approx(0.25)


def test_serverless_rounds_each_request_to_the_granularity(tmp_path: Path) -> None:
    requests = [request(1.0 + i, "/a", lat) for i, lat in enumerate((20.0, 100.0, 101.0, 250.0))]
    usage = samples("api", TEN, [0.5 * t for t in TEN])
    svc = service("api", entry=True, billing="serverless", cpu=1.0, memory=GIB // 2)
    run_dir = write_run(tmp_path / "run", requests, usage, [svc])
    prices = {
        "vcpu_second": (0.0001, "USD/vCPU-second"),
        "memory_gib_second": (0.00001, "USD/GiB-second"),
        "request": (0.4, "USD/1M-requests"),
    }
    path = write_book(tmp_path / "books", "sls", prices, serverless_granularity_ms=100)
    ledger = build_ledger(load_run(run_dir), load_price_book(str(path)))
    totals = ledger.totals  # billed 100 + 100 + 200 + 300 ms = 0.7 s
    assert totals["compute"] == pytest.approx(0.7 * 1.0 * 0.0001)
    assert totals["memory"] == pytest.approx(0.7 * 0.5 * 0.00001)
    assert totals["requests"] == pytest.approx(4 * 0.4e-6)
    assert totals["unattributed"] == 0.0  # idle serverless capacity costs nothing
    exact = build_ledger(
        load_run(run_dir), load_price_book(str(path), {"serverless_granularity_ms": 1})
    )
    assert exact.totals["compute"] == pytest.approx(0.471 * 0.0001)


def test_serverless_missing_prices_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(PriceBookError, match="no 'memory_gib_second' price.*service api"):
        _ledger(_latency_run(tmp_path, billing="serverless"), tmp_path)


def test_fixed_monthly_costs_are_amortized_per_call(tmp_path: Path) -> None:
    ledger = _ledger(
        _latency_run(tmp_path), tmp_path, **{"fixed_monthly:oncall": 3000, "monthly_calls": 1e6}
    )
    assert ledger.totals["amortized"] == pytest.approx(4 * 0.003)
    assert ledger.monthly_calls == 1e6
    amortized = ledger.rows[ledger.rows["x_CostCategory"] == "amortized"]
    assert set(amortized["ChargeCategory"]) == {"Purchase"}
    assert amortized["x_CostPerRequest"].tolist() == pytest.approx([0.003, 0.003])


def test_default_monthly_calls_project_the_achieved_rate(tmp_path: Path) -> None:
    ledger = _ledger(_latency_run(tmp_path), tmp_path, **{"fixed_monthly:oncall": 2592})
    assert ledger.monthly_calls == pytest.approx(4 / 10 * 30 * 86400)
    assert ledger.totals["amortized"] == pytest.approx(2592 * 10 / (30 * 86400))


def test_each_phase_is_attributed_to_its_own_requests(tmp_path: Path) -> None:
    """1 vCPU for 10 s per phase; steady serves 10 calls, the fault phase only 2."""
    phases = (("warmup", 0.0, 5.0, False), ("steady", 5.0, 15.0, True), ("fault", 15.0, 25.0, True))
    requests = [request(1.0, "/a", phase="warmup")]
    requests += [request(5.5 + i, "/a", phase="steady") for i in range(10)]
    requests += [request(16.0 + i, "/a", phase="fault") for i in range(2)]
    times = [float(t) for t in range(26)]
    usage = samples("api", times, [0.1 * t for t in times], rss=0)
    svc = service("api", entry=True, cpu=1.0)
    ledger = _ledger(write_run(tmp_path / "run", requests, usage, [svc], phases), tmp_path)
    full = ledger.rows.groupby("x_Phase")["x_FullCost"].sum()
    calls = (
        ledger.rows[ledger.rows["x_CostCategory"] == "compute"]
        .groupby("x_Phase")["x_RequestCount"]
        .sum()
    )
    assert "warmup" not in full.index
    assert full["steady"] / calls["steady"] == pytest.approx(0.001)
    assert full["fault"] / calls["fault"] == pytest.approx(0.005)
    unattributed = _by(ledger, "x_Phase", "x_CostCategory")
    assert unattributed[("steady", "unattributed")] == pytest.approx(0.009)  # idle: 9 of 10 s


def test_billing_model_override_applies_to_app_services_only(tmp_path: Path) -> None:
    run_dir = _latency_run(tmp_path, billing="instance")
    ledger = _ledger(run_dir, tmp_path, "usage")
    assert set(ledger.rows["x_BillingModel"]) == {"usage"}
    with pytest.raises(InputError, match="unknown billing model 'spot'"):
        _ledger(run_dir, tmp_path, "spot")


def test_external_role_services_are_not_billed(tmp_path: Path) -> None:
    usage = samples("api", TEN, [0.5 * t for t in TEN], rss=0)
    usage += samples("payments", TEN, [0.9 * t for t in TEN], rss=GIB, role="external")
    services = [service("api", entry=True, billing="usage"), service("payments", "external")]
    run_dir = write_run(tmp_path / "run", [request(1.0)], usage, services)
    assert set(_ledger(run_dir, tmp_path).rows["ServiceName"]) == {"api"}


def test_no_requests_leaves_everything_unattributed(tmp_path: Path) -> None:
    usage = samples("api", TEN, [0.5 * t for t in TEN], rss=0)
    run_dir = write_run(
        tmp_path / "run", None, usage, [service("api", entry=True, billing="usage")]
    )
    ledger = _ledger(run_dir, tmp_path)
    assert ledger.totals["total"] == pytest.approx(0.005)
    assert ledger.totals["unattributed"] == pytest.approx(0.005)
    assert ledger.rows["x_FullCost"].sum() == pytest.approx(0.005)


def test_write_ledger_csv_and_parquet(tmp_path: Path) -> None:
    ledger = _ledger(_latency_run(tmp_path), tmp_path)
    write_ledger(tmp_path / "run", ledger)
    csv = pd.read_csv(tmp_path / "run" / LEDGER_CSV)
    table = pq.read_table(tmp_path / "run" / LEDGER_PARQUET)
    assert tuple(csv.columns) == COLUMNS == tuple(table.column_names)
    assert csv["EffectiveCost"].sum() == pytest.approx(0.006)
    assert set(csv["BillingCurrency"]) == {"USD"} and set(csv["x_PriceBook"]) == {"test-book"}
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_price_run_on_a_crashed_run(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", None, None, [service("api")], status="failed")
    summary = price_run(run_dir)
    assert summary["status"] == "failed" and summary["requests"] == 0
    assert summary["cost_per_call_usd"] is None and summary["total_cost_usd"] == 0.0
    assert summary["notes"] == ["requests.parquet missing", "usage.parquet missing"]
    assert (run_dir / LEDGER_CSV).is_file() and (run_dir / "summary.json").is_file()


def test_large_runs_stream_the_requests_file(tmp_path: Path, monkeypatch: Any) -> None:
    """Streaming in batches (different categories per batch) prices exactly like in memory."""
    requests = [
        request(0.5 + i / 2, f"/{'ab'[i % 2]}", 5.0 + i, tenant=["x", None, "y"][i % 3],
                cpu_ms=float(i), bytes_out=1000 * i, external="geo=1" if i > 12 else None)
        for i in range(19)
    ]  # fmt: skip
    usage = samples("api", TEN, [0.5 * t for t in TEN], rss=GIB)
    run_dir = write_run(tmp_path / "run", requests, usage, [service("api", entry=True)])
    book = load_price_book(
        str(write_book(tmp_path / "b", prices=SIMPLE_PRICES)), {"external:geo": 1}
    )
    whole = build_ledger(load_run(run_dir), book)
    monkeypatch.setattr("harness.artifacts.rundata.BATCH_ROWS", 4)
    run = load_run(run_dir, in_memory_rows=5)
    assert run.streamed is not None and "cpu_ms" not in run.requests.columns
    streamed = build_ledger(run, book)
    assert streamed.totals == pytest.approx(whole.totals)
    key = ["x_Endpoint", "x_Tenant", "x_CostCategory"]
    for ledger in (whole, streamed):
        ledger.rows[key] = ledger.rows[key].astype(str)
    a = whole.rows.groupby(key)["x_FullCost"].sum()
    b = streamed.rows.groupby(key)["x_FullCost"].sum()
    assert b.to_dict() == pytest.approx(a.to_dict())


def test_a_phase_with_two_windows_is_charged_once(tmp_path: Path) -> None:
    """``recovery`` follows each fault: its two windows are one phase, priced once."""
    phases = (("baseline", 0.0, 2.0, True), ("fault", 2.0, 4.0, True),
              ("recovery", 4.0, 6.0, True), ("fault2", 6.0, 8.0, True),
              ("recovery", 8.0, 10.0, True))
    requests = [request(t + 0.5, "/a", phase=name, external="pay=1")
                for name, start, _, _ in phases for t in (start, start + 1.0)]
    run_dir = write_run(tmp_path / "run", requests, [], [service("api", entry=True)],
                        phases=phases)
    ledger = _ledger(run_dir, tmp_path, **{"external:pay": 1.0})
    assert ledger.totals["external"] == pytest.approx(10.0)  # ten calls, each once
    recovery = ledger.rows[ledger.rows["x_Phase"] == "recovery"]
    assert recovery["EffectiveCost"].sum() == pytest.approx(4.0)
    assert recovery["ChargePeriodStart"].min() == pd.Timestamp(4.0, unit="s", tz="UTC")
    assert recovery["ChargePeriodEnd"].max() == pd.Timestamp(10.0, unit="s", tz="UTC")
