"""The shop on the real stack (Valkey + PostgreSQL + payments + shop on 127.0.0.1).

Each variant must move a real cost, read from the ``Server-Timing`` header the shop sends,
and the shop's own counters must agree with what Valkey and PostgreSQL count themselves.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import requests

from harness.artifacts.telemetry import Telemetry, parse_server_timing

REPO = Path(__file__).resolve().parents[2]
Shop = Any  # conftest.Service
StartShop = Any  # conftest.ShopLauncher


def telemetry(response: requests.Response) -> Telemetry:
    tel = parse_server_timing(response.headers.get("Server-Timing"))
    assert tel.cpu_ms is not None and not tel.malformed, response.headers.get("Server-Timing")
    return tel


def totals(responses: Iterable[requests.Response]) -> Counter[str]:
    """Sum every counter over ``responses`` (a counter absent from the header is 0)."""
    total: Counter[str] = Counter()
    for response in responses:
        tel = telemetry(response)
        total["calls"] += 1
        total["cpu_ms"] += tel.cpu_ms or 0.0  # type: ignore[assignment]
        for name in ("db_reads", "db_writes", "cache_hits", "cache_misses", "retries",
                     "log_bytes"):  # fmt: skip
            total[name] += getattr(tel, name) or 0
        total["external"] += tel.external.get("payments", 0)
    return total


def flush_cache(valkey: Any) -> None:
    with redis.Redis.from_url(valkey.url) as client:
        client.flushall()


def test_cache_on_and_warm_needs_almost_no_db_reads(start_shop: StartShop, valkey: Any) -> None:
    flush_cache(valkey)
    cached, uncached = start_shop.many({"SHOP_CACHE": "on"}, {"SHOP_CACHE": "off"})
    ids = range(1, 41)
    cold = totals(cached.get(f"/products/{i}") for i in ids)
    warm = totals(cached.get(f"/products/{i}") for _ in range(5) for i in ids)
    off = totals(uncached.get(f"/products/{i}") for _ in range(2) for i in ids)

    assert cold["db_reads"] / cold["calls"] == 1 and cold["cache_misses"] == cold["calls"]
    assert warm["db_reads"] / warm["calls"] <= 0.01  # near zero once warm
    assert warm["cache_hits"] == warm["calls"]
    assert off["db_reads"] / off["calls"] == 1 and off["cache_hits"] + off["cache_misses"] == 0
    body = cached.get("/products/7").json()
    assert body["id"] == 7 and body == uncached.get("/products/7").json()
    assert cached.get("/products/999999").status_code == 404


@pytest.mark.parametrize(("retries", "external_per_checkout"), [("none", 1), ("naive", 5)])
def test_naive_retries_multiply_paid_calls_when_payments_fail(
    start_shop: StartShop, payments: Shop, retries: str, external_per_checkout: int
) -> None:
    shop = start_shop(SHOP_RETRIES=retries)
    payments.post("/control", {"mode": "fail"}).raise_for_status()
    before = payments.get("/stats").json()
    responses = [shop.post("/checkout", {"product_id": 3, "qty": 2}) for _ in range(8)]
    after = payments.get("/stats").json()

    assert {r.status_code for r in responses} == {502}
    total = totals(responses)
    assert total["external"] / total["calls"] == external_per_checkout
    assert total["retries"] / total["calls"] == external_per_checkout - 1
    assert after["attempted"] - before["attempted"] == total["external"]  # what the vendor saw


def test_backoff_breaker_fails_fast_then_recovers(start_shop: StartShop, payments: Shop) -> None:
    shop = start_shop(SHOP_RETRIES="backoff_breaker", SHOP_BREAKER_THRESHOLD="5",
                      SHOP_BREAKER_COOLDOWN_MS="1000")  # fmt: skip
    payments.post("/control", {"mode": "fail"}).raise_for_status()
    failing = [totals([shop.post("/checkout", {"product_id": 4, "qty": 1})]) for _ in range(6)]
    # 3 attempts, then 2 more open the breaker (5 consecutive failures), then no call at all.
    assert [t["external"] for t in failing] == [3, 2, 0, 0, 0, 0]

    payments.post("/control", {"mode": "ok"}).raise_for_status()
    time.sleep(1.1)  # the cool-down passes: one trial call goes out and closes the breaker
    recovered = [shop.post("/checkout", {"product_id": 4, "qty": 1}) for _ in range(3)]
    assert [r.status_code for r in recovered] == [201, 201, 201]
    assert [totals([r])["external"] for r in recovered] == [1, 1, 1]


def test_a_payments_timeout_fails_the_checkout_and_control_still_answers(
    start_shop: StartShop, payments: Shop
) -> None:
    shop = start_shop(SHOP_PAYMENTS_TIMEOUT_MS="200")
    payments.post("/control", {"mode": "timeout", "hold_ms": 20000}).raise_for_status()
    started = time.monotonic()
    response = shop.post("/checkout", {"product_id": 6, "qty": 1})
    assert response.status_code == 502 and time.monotonic() - started < 2
    assert totals([response])["external"] == 1
    started = time.monotonic()  # the held request must not block the fault's revert
    payments.post("/control", {"mode": "ok"}).raise_for_status()
    assert time.monotonic() - started < 1
    assert shop.post("/checkout", {"product_id": 6, "qty": 1}).status_code == 201


def test_gzip_payload_trades_bytes_out_for_cpu(start_shop: StartShop) -> None:
    plain, gzipped = start_shop.many({"SHOP_PAYLOAD": "json"}, {"SHOP_PAYLOAD": "gzip"})

    def export(shop: Shop) -> tuple[int, float, requests.Response]:
        calls = [shop.get("/catalog/export?limit=1000", stream=True) for _ in range(7)]
        raw = [len(r.raw.read(decode_content=False)) for r in calls]
        return raw[0], statistics.median(telemetry(r).cpu_ms or 0.0 for r in calls), calls[0]

    plain_bytes, plain_cpu, plain_resp = export(plain)
    gzip_bytes, gzip_cpu, gzip_resp = export(gzipped)
    assert gzip_resp.headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in plain_resp.headers
    assert gzip_bytes < plain_bytes / 3
    assert gzip_cpu > plain_cpu * 1.2, (gzip_cpu, plain_cpu)
    print(f"export 1000: json {plain_bytes} B {plain_cpu:.2f} ms; gzip {gzip_bytes} B "
          f"{gzip_cpu:.2f} ms")  # fmt: skip


def test_log_level_changes_log_bytes_per_call(start_shop: StartShop) -> None:
    levels = ("WARNING", "INFO", "DEBUG")
    shops = start_shop.many(*({"SHOP_LOG_LEVEL": level} for level in levels))
    per_call = {}
    for level, shop in zip(levels, shops, strict=True):
        total = totals(shop.get(f"/products/{i}") for i in range(1, 21))
        per_call[level] = total["log_bytes"] / total["calls"]
    print("log bytes per /products call:", per_call)
    assert per_call["WARNING"] == 0
    assert 40 < per_call["INFO"] < 200  # one line per request
    assert per_call["DEBUG"] > 2 * per_call["INFO"], per_call


def test_search_is_cpu_heavy_and_deterministic(start_shop: StartShop) -> None:
    shop = start_shop()
    for i in range(20):  # every server thread has its database connection
        shop.get(f"/products/{i + 1}")
    searches = [shop.get("/search", params={"q": "wireless leather speaker"}) for _ in range(5)]
    products = [shop.get(f"/products/{i}") for i in range(1, 6)]
    results = {str(r.json()["results"]) for r in searches}
    assert len(results) == 1 and len(searches[0].json()["results"]) == 10
    search_cpu = statistics.median(telemetry(r).cpu_ms or 0.0 for r in searches)
    product_cpu = statistics.median(telemetry(r).cpu_ms or 0.0 for r in products)
    assert search_cpu > 3 * product_cpu, (search_cpu, product_cpu)
    assert totals(searches)["db_reads"] == 0


def _wait_shop_backends_gone(postgres: Any, timeout_s: float = 10) -> None:
    """PostgreSQL publishes a backend's counts when it exits: wait for the shops' to exit."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'shop:%'"
        while (row := conn.execute(sql).fetchone()) and row[0] and time.monotonic() < deadline:
            time.sleep(0.05)
    assert row == (0,), "shop connections still open"


def test_service_counters_agree_with_the_servers_counts(
    start_shop: StartShop, valkey: Any, postgres: Any, payments: Shop
) -> None:
    flush_cache(valkey)
    _wait_shop_backends_gone(postgres)
    pg0, vk0, pay0 = postgres.stats(), valkey.stats(), payments.get("/stats").json()
    shop = start_shop(SHOP_CACHE="on")
    calls = [f"/products/{(i * 7919) % 400 + 1}" for i in range(600)]  # repeats: hits
    calls += ["/products/999999"] * 10 + ["checkout"] * 40
    local, sessions = threading.local(), []

    def call(path: str) -> requests.Response:
        if not hasattr(local, "session"):  # one keep-alive client per worker thread
            local.session = requests.Session()
            sessions.append(local.session)
        session: requests.Session = local.session
        if path == "checkout":
            return session.post(shop.url + "/checkout", json={"product_id": 5, "qty": 1},
                                timeout=30)  # fmt: skip
        return session.get(shop.url + path, timeout=30)

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            responses: list[requests.Response] = list(pool.map(call, calls))
    finally:
        for session in sessions:
            session.close()
    served = shop.get("/stats").json()
    shop.stop()
    _wait_shop_backends_gone(postgres)
    pg1, vk1, pay1 = postgres.stats(), valkey.stats(), payments.get("/stats").json()

    total = totals(responses)
    server = {
        "cache_hits": vk1["keyspace_hits"] - vk0["keyspace_hits"],
        "cache_misses": vk1["keyspace_misses"] - vk0["keyspace_misses"],
        "db_reads": pg1["products.idx_scan"] - pg0["products.idx_scan"],
        "db_writes": (pg1["orders.n_tup_ins"] + pg1["orders.n_tup_upd"])
        - (pg0.get("orders.n_tup_ins", 0) + pg0.get("orders.n_tup_upd", 0)),
        "external": pay1["attempted"] - pay0["attempted"],
    }
    print("service:", {k: total[k] for k in server}, "servers:", server)
    for name, counted in server.items():
        assert abs(total[name] - counted) <= 0.02 * max(counted, 1), (name, total[name], counted)
    assert pg1["orders.n_tup_ins"] - pg0.get("orders.n_tup_ins", 0) == 40
    assert total["cache_hits"] >= 150 and total["cache_misses"] >= 410  # 400 ids, 10 absent
    assert served["served"] == len(calls)
    assert served["by_path"] == {"/products/<int:product_id>": 610, "/checkout": 40}


def run_target(module: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "PORT": "1", **env}
    return subprocess.run([sys.executable, "-m", module], env=full_env, capture_output=True,
                          text=True, timeout=30, check=False)  # fmt: skip


SHOP_BASE = {"SHOP_DB_URL": "postgresql://postgres@127.0.0.1:1/postgres",
             "SHOP_PAYMENTS_URL": "http://127.0.0.1:1"}  # fmt: skip


@pytest.mark.parametrize(
    ("module", "env", "expected"),
    [
        ("targets.shop", {**SHOP_BASE, "SHOP_RETRIES": "forever"},
         "invalid SHOP_RETRIES='forever'; allowed values: none, naive, backoff_breaker"),
        ("targets.shop", {**SHOP_BASE, "SHOP_CACHE": "maybe"},
         "invalid SHOP_CACHE='maybe'; allowed values: off, on"),
        ("targets.shop", {**SHOP_BASE, "SHOP_CACHE": "on"}, "SHOP_CACHE_URL is not set"),
        ("targets.shop", {**SHOP_BASE, "SHOP_PAYLOAD": "brotli"}, "invalid SHOP_PAYLOAD="),
        ("targets.shop", {**SHOP_BASE, "SHOP_LOG_LEVEL": "LOUD"}, "invalid SHOP_LOG_LEVEL="),
        ("targets.shop", {**SHOP_BASE, "SHOP_INSTRUMENT": "maybe"},
         "invalid SHOP_INSTRUMENT='maybe'; allowed values: on, off"),
        ("targets.payments", {"PAYMENTS_MODE": "flaky"},
         "invalid PAYMENTS_MODE='flaky'; allowed values: ok, fail, slow, timeout"),
        ("targets.payments", {"PAYMENTS_FAIL_RATE": "2"}, "invalid PAYMENTS_FAIL_RATE='2'"),
    ],
)  # fmt: skip
def test_an_invalid_variant_is_one_line_and_exit_2(
    module: str, env: dict[str, str], expected: str
) -> None:
    done = run_target(module, **env)
    assert done.returncode == 2
    assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_an_unreachable_database_is_exit_3(free_port: int) -> None:
    env = {**SHOP_BASE, "SHOP_DB_URL": f"postgresql://postgres@127.0.0.1:{free_port}/postgres"}
    done = run_target("targets.shop", **env, SHOP_STARTUP_TIMEOUT_MS="300")
    assert done.returncode == 3
    assert done.stderr.startswith("shop: database unavailable: cannot connect to"), done.stderr


def test_payments_control_and_stats(payments: Shop) -> None:
    assert payments.post("/control", {"fail_rate": 3}).status_code == 400
    assert payments.post("/control", {"colour": "red"}).status_code == 400
    before = payments.get("/stats").json()
    payments.post("/control", {"fail_rate": 0.5, "latency_ms": 0}).raise_for_status()
    codes = Counter(payments.post("/charge", {"order_id": i, "amount_cents": 100}).status_code
                    for i in range(60))  # fmt: skip
    after = payments.get("/stats").json()
    assert set(codes) == {200, 503} and codes[200] + codes[503] == 60
    assert after["attempted"] - before["attempted"] == 60
    assert after["failed"] - before["failed"] == codes[503]
    assert payments.post("/charge", {"amount_cents": "ten"}).status_code == 400


def test_a_stopped_shop_exits_cleanly(start_shop: StartShop) -> None:
    shop = start_shop()
    started = time.monotonic()
    shop.stop()
    assert shop.proc.exit_code() == 0 and time.monotonic() - started < 5, shop.proc.tail()
