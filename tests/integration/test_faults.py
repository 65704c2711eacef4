"""Faults on the real sample system, each with an assertion on its measured effect, and an
interrupt during a fault that must leave everything reverted and nothing running."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import HARNESS, ROOT, leftover_processes, run_cli

pytestmark = pytest.mark.slow

SHOP = """
name: shop-faults
target:
  entry: shop
  services:
    db: {kind: postgres}
    cache: {kind: valkey}
    payments:
      command: "{python} -m targets.payments"
      role: external
      env: {PAYMENTS_LATENCY_MS: "10"}
    shop:
      command: "{python} -m targets.shop"
      depends_on: [db, cache, payments]
      startup_timeout: 60s
      env:
        SHOP_DB_URL: "{services.db.url}"
        SHOP_CACHE_URL: "{services.cache.url}"
        SHOP_PAYMENTS_URL: "{services.payments.url}"
        SHOP_CACHE: "on"
        SHOP_LOG_LEVEL: WARNING
        SHOP_PRODUCTS: "2000"
traffic: {model: open, rate: 40, warmup: 4s, duration: 36s}
requests:
  - {name: product, path: "/products/{id}", params: {id: {range: [1, 150]}}, weight: 6}
  - name: checkout
    method: POST
    path: /checkout
    body: {product_id: "{id}", qty: 1}
    params: {id: {range: [1, 150]}}
    weight: 2
pricing:
  price_book: aws-fargate-us-east-1
  overrides: {"external:payments": 0.001}
faults:
  - {name: flush, kind: cache_eviction, target: cache, mode: flush_all, start: 8s, duration: 8s}
  - {name: slow-payments, kind: downstream, target: payments, mode: latency, latency_ms: 200,
     start: 18s, duration: 8s}
  - {name: debug-logs, kind: log_level, target: shop, level: DEBUG, start: 28s, duration: 6s}
"""


def _per_phase(records: pd.DataFrame, endpoint: str, column: str) -> pd.Series:
    rows = records[records["endpoint"] == endpoint]
    return rows.groupby("phase")[column].apply(lambda s: s.fillna(0).mean())


def test_cache_flush_latency_and_log_level_move_their_numbers(
        scenario_file: Callable[[str], Path], run_dir: Path) -> None:
    done = run_cli("run", scenario_file(SHOP), "--output", run_dir, timeout=300)
    assert done.returncode == 0, done.stderr
    records = pd.read_parquet(run_dir / "requests.parquet")
    steps = [json.loads(line) for line in (run_dir / "faults.jsonl").read_text().splitlines()]
    assert [(s["fault"], s["action"], s["status"]) for s in steps] == [
        ("flush", "inject", "ok"), ("flush", "revert", "ok"),
        ("slow-payments", "inject", "ok"), ("slow-payments", "revert", "ok"),
        ("debug-logs", "inject", "ok"), ("debug-logs", "revert", "ok")]

    flush_at = steps[0]["start"]
    product = records[records["endpoint"] == "product"]
    before = product[(product["phase"] == "baseline")]["db_reads"].fillna(0).mean()
    right_after = product[(product["start"] >= flush_at) & (product["start"] < flush_at + 2)]
    late = product[(product["phase"] == "flush") & (product["start"] > flush_at + 5)]
    assert right_after["db_reads"].fillna(0).mean() > before + 0.3  # the flush empties the cache
    assert late["db_reads"].fillna(0).mean() < right_after["db_reads"].fillna(0).mean() / 2

    latency = _per_phase(records, "checkout", "latency_ms")
    assert latency["slow-payments"] > latency["baseline"] + 150  # ≈ the injected 200 ms

    logs = _per_phase(records, "product", "log_bytes")
    assert logs["debug-logs"] > 100 and logs["baseline"] == 0

    summary = json.loads((run_dir / "summary.json").read_text())
    phases = {p["name"]: p for p in summary["phases"]}
    assert {"baseline", "flush", "slow-payments", "debug-logs", "recovery"} <= set(phases)
    assert phases["slow-payments"]["p95_ms"] > phases["baseline"]["p95_ms"]
    assert not leftover_processes(run_dir)


SAMPLE = """
name: replica-faults
target:
  services:
    api:
      command: "{python} -m targets.sample"
      replicas: 2
      cpu: 0.25
traffic: {model: open, rate: 60, max_in_flight: 64, warmup: 2s, duration: 30s}
requests:
  - {name: cpu, path: "/cpu?ms=8"}
faults:
  - {name: cold, kind: cold_start, target: api, replicas: 1, start: 2s, duration: 6s}
  - {name: killed, kind: kill, target: api, replicas: 1, start: 9s, duration: 5s}
  - name: burst
    kind: autoscale_burst
    target: api
    multiplier: 2
    start: 15s
    duration: 12s
    autoscaler: {min_replicas: 1, max_replicas: 4, target_cpu: 0.3, sync_period: 1s}
"""


def test_cold_start_kill_and_autoscaler_change_real_replicas(
        scenario_file: Callable[[str], Path], run_dir: Path) -> None:
    done = run_cli("run", scenario_file(SAMPLE), "--output", run_dir, timeout=300)
    assert done.returncode == 0, done.stderr
    steps = {(s["fault"], s["action"]): s for s in map(
        json.loads, (run_dir / "faults.jsonl").read_text().splitlines())}
    assert all(s["status"] == "ok" for s in steps.values()), steps
    ready = steps[("cold", "inject")]["details"]["time_to_ready_s"]
    assert len(ready) == 1 and 0 < next(iter(ready.values())) < 30
    assert steps[("killed", "revert")]["details"]["restarted"]
    burst = steps[("burst", "revert")]["details"]
    assert burst["peak_replicas"] > 2 and burst["decisions"]

    usage = pd.read_parquet(run_dir / "usage.parquet")
    alive = usage[usage["alive"]].groupby("ts")["replica"].nunique()
    assert alive.max() > 2  # the autoscaler really started replicas
    served = pd.read_parquet(run_dir / "requests.parquet")["replica"].nunique()
    assert served >= 4  # original pair, the cold-started one, the restarted/scaled ones
    assert not leftover_processes(run_dir)


def test_sigint_during_a_fault_reverts_it_and_stops_everything(
        scenario_file: Callable[[str], Path], run_dir: Path) -> None:
    text = SAMPLE.replace("duration: 30s", "duration: 60s").split("faults:")[0] + """
faults:
  - {name: paused, kind: pause, target: api, replicas: 1, start: 1s, duration: 50s}
"""
    proc = subprocess.Popen([HARNESS, "run", str(scenario_file(text)), "--output", str(run_dir)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    faults = run_dir / "faults.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline and not (faults.exists() and faults.read_text().strip()):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    steps = [json.loads(line) for line in faults.read_text().splitlines()]
    assert [(s["action"], s["status"]) for s in steps] == [("inject", "ok"), ("revert", "ok")]
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    assert not leftover_processes(run_dir)
