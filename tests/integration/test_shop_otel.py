"""The shop under real ``opentelemetry-instrument`` (no Server-Timing middleware) through a real
``harness run``: the DB, cache and payments calls per request, taken from the spans, equal what
PostgreSQL, Valkey and the payments service count themselves; a clean run loses no trace, and
a replica killed before its exporter flushed loses traces that are counted, not dropped.

PostgreSQL and Valkey are the session's servers (outside the run's stack, so their counters can
be read after the run); payments is a service of the stack, so its calls are named by service.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from harness.artifacts.rundata import load_run

REPO = Path(__file__).resolve().parents[2]
HARNESS = [sys.executable, "-m", "harness.cli"]

SCENARIO = """
name: shop-otel-check
target:
  runtime: local
  entry: shop
  services:
    payments:
      command: "{{python}} -m targets.payments"
      role: external
      env: {{PAYMENTS_LATENCY_MS: "2", PAYMENTS_JITTER_MS: "1",
             PAYMENTS_STATS_FILE: "{{run_dir}}/payments-stats.json"}}
    shop:
      command: "{{python}} -m targets.shop.otel"
      replicas: {replicas}
      depends_on: [payments]
      startup_timeout: 60s
      env:
        SHOP_DB_URL: "{db_url}"
        SHOP_CACHE_URL: "{cache_url}"
        SHOP_PAYMENTS_URL: "{{services.payments.url}}"
        SHOP_CACHE: "on"
        SHOP_PRODUCTS: "5000"
        SHOP_LOG_LEVEL: WARNING{extra_env}
traffic: {{model: open, rate: {rate}, warmup: 2s, duration: {duration}}}
requests:
  - name: GET /products/{{id}}
    path: /products/{{id}}
    params: {{id: {{range: [1, 300]}}}}
    weight: 6
  - name: POST /checkout
    method: POST
    path: /checkout
    body: {{product_id: "{{id}}", qty: 1}}
    params: {{id: {{range: [1, 300]}}}}
    weight: 2
  - name: GET /products/999999
    path: /products/999999
    weight: 1
otel: {{enabled: true, grace: 3s}}
pricing:
  price_book: aws-fargate-us-east-1
  overrides: {{"external:payments": 0.0025, db_read: 0, db_write: 0, cache_op: 0}}
{faults}
"""


def _run(tmp_path: Path, postgres: Any, valkey: Any, *, replicas: int = 2, rate: int = 25,
         duration: str = "8s", extra_env: str = "",
         faults: str = "") -> tuple[Path, str]:  # fmt: skip
    scenario = tmp_path / "shop-otel.yaml"
    scenario.write_text(SCENARIO.format(db_url=postgres.url, cache_url=valkey.url,
                                        replicas=replicas, rate=rate, duration=duration,
                                        extra_env=extra_env, faults=faults))  # fmt: skip
    run_dir = tmp_path / "run"
    done = subprocess.run([*HARNESS, "run", str(scenario), "--output", str(run_dir)], cwd=REPO,
                          capture_output=True, text=True, timeout=240, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return run_dir, done.stdout


def _commands(valkey: Any) -> dict[str, int]:
    with redis.Redis.from_url(valkey.url) as client:
        stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def _pg(postgres: Any) -> dict[str, int]:
    """Index scans of products and rows written to orders, once no shop is connected."""
    deadline = time.monotonic() + 10
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'shop:%'"
        while (row := conn.execute(sql).fetchone()) and row[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert row == (0,), "shop connections still open"
    stats: dict[str, int] = postgres.stats()
    return {"reads": stats.get("products.idx_scan", 0),
            "writes": stats.get("orders.n_tup_ins", 0) + stats.get("orders.n_tup_upd", 0)}


def test_span_counts_per_request_equal_the_servers_own_counts(
    tmp_path: Path, postgres: Any, valkey: Any
) -> None:
    with redis.Redis.from_url(valkey.url) as client:
        client.flushall()
    pg0, vk0 = _pg(postgres), _commands(valkey)
    run_dir, stdout = _run(tmp_path, postgres, valkey)
    pg1, vk1 = _pg(postgres), _commands(valkey)
    payments = json.loads((run_dir / "payments-stats.json").read_text())

    frame = load_run(run_dir).requests  # every phase: the servers counted them all
    missing = frame["endpoint"] == "GET /products/999999"
    assert len(frame) > 150 and (frame["status"] == 404).sum() == missing.sum() > 0
    assert frame.loc[~missing, "error"].isna().all()
    assert set(frame["telemetry_source"].astype(str)) == {"otel-spans"}
    assert frame["cpu_ms"].isna().all()  # no Server-Timing header: all of it from spans
    cache_calls = sum(vk1.get(c, 0) - vk0.get(c, 0) for c in ("get", "set"))
    servers = {"db_reads": pg1["reads"] - pg0["reads"],
               "db_writes": pg1["writes"] - pg0["writes"], "cache_ops": cache_calls,
               "external_calls": payments["attempted"]}  # fmt: skip
    spans = {name: int(frame[name].sum()) for name in servers}
    print("from spans:", spans, "servers:", servers)
    assert spans == servers
    checkout = frame[frame["endpoint"] == "POST /checkout"]
    assert set(checkout["external"].astype(str)) == {"payments=1"}  # named by its service
    assert (checkout["db_writes"] == 2).all() and (checkout["db_reads"] == 1).all()
    assert (frame["server_ms"] > 0).all()

    summary = json.loads((run_dir / "summary.json").read_text())
    otel = summary["telemetry"]["otel"]
    assert otel["lost_requests"] == 0 and otel["unanswered_requests"] == 0
    assert otel["late_spans"] == 0 and otel["rejected_payloads"] == 0
    assert otel["requests_traced"] == len(frame) and otel["foreign_traces"] > 0  # start-up
    assert summary["categories"]["external"]["usd"] == pytest.approx(
        0.0025 * int((load_run(run_dir).priced_requests["external_calls"]).sum()))
    assert "otel: " in stdout and "lost 0," in stdout


def test_a_replica_killed_before_flushing_loses_traces_that_are_counted(
    tmp_path: Path, postgres: Any, valkey: Any
) -> None:
    # A 60 s batch delay: the killed replica's spans are still in its exporter's queue.
    faults = "faults:\n  - {name: killed, kind: kill, target: shop, replicas: 1, start: 2s, " \
             "duration: 3s}"
    run_dir, stdout = _run(tmp_path, postgres, valkey, replicas=1, rate=10, duration="8s",
                           extra_env='\n        OTEL_BSP_SCHEDULE_DELAY: "60000"',
                           faults=faults)  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    otel = summary["telemetry"]["otel"]
    frame = load_run(run_dir).requests
    answered_before_kill = int((frame["status"] > 0).sum()) - int(
        (frame["telemetry_source"].astype(str) == "otel-spans").sum())
    assert otel["lost_requests"] > 10 and otel["lost_requests"] == answered_before_kill
    assert otel["late_spans"] == 0
    assert (frame["telemetry_source"].astype(str) == "otel-spans").sum() > 10  # after restart
    assert any("traced requests have no trace" in note for note in summary["notes"])
    assert f"lost {otel['lost_requests']:,}," in stdout
    report = (run_dir / "report.html").read_text()
    assert "answered traced requests whose trace never arrived" in report
