"""Checks of one calibrated run's artifacts against the designed truth (``bench/attribution.py``).

Everything here reads the run directory only: ``ledger.parquet``, ``summary.json``,
``usage.parquet``, ``requests.parquet``, ``manifest.json`` and the target's
``calibrated-stats.json`` (PostgreSQL's own counts, written by the target at exit).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from benchlib import table

from harness.artifacts import read_manifest
from harness.cost import load_price_book

# Designed cost of each endpoint: handler CPU ms, response bytes, DB reads and writes.
ENDPOINTS: dict[str, dict[str, float]] = {
    "/light": {"cpu_ms": 2, "bytes": 512, "reads": 1, "writes": 0, "weight": 4},
    "/medium": {"cpu_ms": 10, "bytes": 16_384, "reads": 2, "writes": 1, "weight": 3},
    "/heavy": {"cpu_ms": 40, "bytes": 4_096, "reads": 0, "writes": 0, "weight": 1},
    "/download": {"cpu_ms": 3, "bytes": 262_144, "reads": 0, "writes": 0, "weight": 1},
    "/write": {"cpu_ms": 5, "bytes": 128, "reads": 1, "writes": 3, "weight": 2},
}
GOALS = {"cpu": 5.0, "bytes": 1.0, "reconciliation": 1.0}  # percent
CPU_KEYS = ("vcpu_hour", "vcpu_second")


def _per_endpoint(ledger: pd.DataFrame, mask: pd.Series) -> pd.Series:
    rows = ledger[mask & ledger["x_Endpoint"].notna()]
    return rows.groupby("x_Endpoint")["ConsumedQuantity"].sum()


def endpoint_table(ledger: pd.DataFrame, summary: dict[str, Any]) -> pd.DataFrame:
    """Per endpoint: calls, truth, measured per call (ledger and Server-Timing), errors in %."""
    cpu = ledger["x_PriceKey"].isin(CPU_KEYS) & (ledger["ServiceName"] == "api")
    calls = ledger[cpu & ledger["x_Endpoint"].notna()].groupby("x_Endpoint")["x_RequestCount"]
    calls_by = calls.sum()
    cpu_s = _per_endpoint(ledger, cpu)
    egress_gb = _per_endpoint(ledger, ledger["x_CostCategory"] == "egress")
    reads = _per_endpoint(ledger, ledger["x_PriceKey"] == "db_read")
    writes = _per_endpoint(ledger, ledger["x_PriceKey"] == "db_write")
    st = {e["name"]: e for e in summary["endpoints"]}
    rows = []
    for path, truth in ENDPOINTS.items():
        name = f"GET {path}"
        n = float(calls_by.get(name, 0.0))
        row = {"endpoint": name, "calls": n, "cpu_truth_ms": truth["cpu_ms"],
               "cpu_ledger_ms": cpu_s.get(name, np.nan) * 1000 / n,
               "cpu_server_timing_ms": st.get(name, {}).get("cpu_ms_per_call", np.nan),
               "bytes_truth": truth["bytes"], "bytes_ledger": egress_gb.get(name, 0.0) * 1e9 / n,
               "reads_truth": truth["reads"], "reads_ledger": reads.get(name, 0.0) / n,
               "writes_truth": truth["writes"],
               "writes_ledger": writes.get(name, 0.0) / n}  # fmt: skip
        row["cpu_err_pct"] = (row["cpu_ledger_ms"] / truth["cpu_ms"] - 1) * 100
        row["bytes_err_pct"] = (row["bytes_ledger"] / truth["bytes"] - 1) * 100
        row["ops_exact"] = float(np.isclose(row["reads_ledger"], truth["reads"], rtol=0, atol=1e-9)
                                 and np.isclose(row["writes_ledger"], truth["writes"], rtol=0,
                                                atol=1e-9))  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def _integrate(samples: pd.DataFrame, start: float, end: float) -> tuple[float, float]:
    """CPU-seconds (cumulative counter interpolated at the window edges) and RSS GiB-seconds
    (each sample's RSS held until the next sample) of one replica over [start, end]."""
    ts = samples["ts"].to_numpy(float)
    cpu = samples["cpu_s"].to_numpy(float)
    cpu_s = float(np.interp(end, ts, cpu) - np.interp(start, ts, cpu))
    lo = np.clip(ts[:-1], start, end)
    hi = np.clip(ts[1:], start, end)
    alive = samples["alive"].to_numpy(bool)[:-1]
    rss = samples["rss_bytes"].to_numpy(float)[:-1]
    gib_s = float(np.sum(np.where(alive, rss * (hi - lo), 0.0)) / 2**30)
    return cpu_s, gib_s


def metered_total(run_dir: Path, reads: float, writes: float) -> dict[str, float]:
    """The bill computed from the meters directly: the api's consumed CPU and RSS (usage
    billing), response bytes (egress) and DB operations (serverless database)."""
    manifest = read_manifest(run_dir)
    book = load_price_book(manifest.price_book)
    usage = pd.read_parquet(run_dir / "usage.parquet")
    requests = pd.read_parquet(run_dir / "requests.parquet")
    cpu_s = gib_s = 0.0
    egress = 0.0
    for window in (w for w in manifest.phases if w.priced and w.end is not None):
        api = usage[usage["service"] == "api"]
        for _, samples in api.groupby("replica"):
            c, g = _integrate(samples.sort_values("ts"), window.start, float(window.end or 0))
            cpu_s, gib_s = cpu_s + c, gib_s + g
        egress += float(requests.loc[requests["phase"] == window.name, "bytes_out"].sum())

    def price(key: str) -> float:
        found = book.get(key)
        if found is None:
            raise SystemExit(f"price book {book.name} has no {key}")
        return found.per_base_unit

    parts = {"cpu": cpu_s * price("vcpu_hour"), "memory": gib_s * price("memory_gib_hour"),
             "egress": egress / 1e9 * price("egress_gb"), "db_read": reads * price("db_read"),
             "db_write": writes * price("db_write")}  # fmt: skip
    return parts | {"total": sum(parts.values()), "cpu_s": cpu_s}


def database_check(run_dir: Path, requests: pd.DataFrame) -> dict[str, float]:
    """Every recorded request's DB counters vs PostgreSQL's own counts over the whole run."""
    path = run_dir / "calibrated-stats.json"
    out = {"reads_recorded": float(requests["db_reads"].fillna(0).sum()),
           "writes_recorded": float(requests["db_writes"].fillna(0).sum())}  # fmt: skip
    if not path.exists():
        return out | {"reads_postgres": np.nan, "writes_postgres": np.nan, "rows_postgres": np.nan}
    stats = json.loads(path.read_text(encoding="utf-8"))
    before, after = stats["db_before"], stats["db_after"]
    return out | {"reads_postgres": float(after["scans"] - before["scans"]),
                  "writes_postgres": float(after["inserts"] - before["inserts"]),
                  "rows_postgres": float(after["rows"] - before["rows"])}  # fmt: skip


def check_run(run_dir: Path) -> dict[str, Any]:
    ledger = pd.read_parquet(run_dir / "ledger.parquet")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    requests = pd.read_parquet(run_dir / "requests.parquet")
    priced = requests[requests["phase"].isin(
        [w.name for w in read_manifest(run_dir).phases if w.priced])]  # fmt: skip
    endpoints = endpoint_table(ledger, summary)
    metered = metered_total(run_dir, float(priced["db_reads"].fillna(0).sum()),
                            float(priced["db_writes"].fillna(0).sum()))  # fmt: skip
    ledger_total = float(ledger["EffectiveCost"].sum())
    totals = {"ledger_total": ledger_total, "summary_total": float(summary["total_cost_usd"]),
              "metered_total": metered["total"],
              "reconciliation_err_pct": (ledger_total / metered["total"] - 1) * 100,
              "summary_vs_ledger_pct": (summary["total_cost_usd"] / ledger_total - 1) * 100,
              "unattributed_share": summary.get("unattributed_share") or 0.0,
              "api_cpu_s": metered["cpu_s"],
              "truth_cpu_s": float((endpoints["calls"] * endpoints["cpu_truth_ms"]).sum()) / 1000,
              "errors": float(summary["errors"]),
              "requests": float(summary["requests"])}  # fmt: skip
    totals |= database_check(run_dir, requests)
    totals["profiles"] = _profile_shares(summary, endpoints)
    return {"endpoints": endpoints, "totals": totals}


def _profile_shares(summary: dict[str, Any], endpoints: pd.DataFrame) -> float:
    """Largest gap (percentage points) between an endpoint's profiled CPU share and its
    designed share; NaN when the run had no profiles."""
    check = (summary.get("profiles") or {}).get("api")
    if not check:
        return float("nan")
    truth = endpoints.set_index("endpoint")["calls"] * endpoints.set_index("endpoint")[
        "cpu_truth_ms"]
    truth = truth / truth.sum()
    gaps = [abs((check["endpoints"].get(name, {}).get("profile_cpu_share") or 0.0) - share) * 100
            for name, share in truth.items()]  # fmt: skip
    return float(max(gaps))


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _endpoint_rows(median: pd.DataFrame, results: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for name, r in median.iterrows():
        worst = max(abs(float(x["endpoints"].set_index("endpoint").loc[name, "cpu_err_pct"]))
                    for x in results)  # fmt: skip
        exact = all(x["endpoints"].set_index("endpoint").loc[name, "ops_exact"] for x in results)
        rows.append([str(name), f"{r['calls']:.0f}", f"{r['cpu_truth_ms']:g}",
                     f"{r['cpu_ledger_ms']:.3f}", f"{r['cpu_err_pct']:+.2f} (worst {worst:.2f})",
                     f"{r['cpu_server_timing_ms']:.3f}", f"{r['bytes_truth']:,.0f}",
                     f"{r['bytes_ledger']:,.1f}", f"{r['bytes_err_pct']:+.3f}",
                     f"{r['reads_truth']:g} / {r['reads_ledger']:g}",
                     f"{r['writes_truth']:g} / {r['writes_ledger']:g}",
                     "yes" if exact else "NO"])  # fmt: skip
    return rows


def _run_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for i, r in enumerate(results):
        t = r["totals"]
        rows.append([str(i + 1), f"{t['requests']:.0f}", f"{t['ledger_total']:.6g}",
                     f"{t['metered_total']:.6g}", f"{t['reconciliation_err_pct']:+.3f}",
                     f"{t['summary_vs_ledger_pct']:+.3f}",
                     f"{t['reads_recorded']:.0f} / {t['reads_postgres']:.0f}",
                     f"{t['writes_recorded']:.0f} / {t['writes_postgres']:.0f} / "
                     f"{t['rows_postgres']:.0f}",
                     f"{t['api_cpu_s'] / t['truth_cpu_s']:.3f}",
                     f"{t['unattributed_share'] * 100:.1f}",
                     "n/a" if np.isnan(t["profiles"]) else f"{t['profiles']:.1f}"])  # fmt: skip
    return rows


def _goal_rows(median: pd.DataFrame, results: list[dict[str, Any]]) -> list[list[str]]:
    cpu_worst = max(float(x["endpoints"]["cpu_err_pct"].abs().max()) for x in results)
    cpu_median = float(median["cpu_err_pct"].abs().max())
    bytes_worst = max(float(x["endpoints"]["bytes_err_pct"].abs().max()) for x in results)
    ops = all(bool(x["endpoints"]["ops_exact"].all()) for x in results)
    pg = all(t["reads_recorded"] == t["reads_postgres"] and t["writes_recorded"] ==
             t["writes_postgres"] == t["rows_postgres"] for t in (x["totals"] for x in results))
    recon = [abs(x["totals"]["reconciliation_err_pct"]) for x in results]
    return [
        ["CPU per call within ±5 %", f"largest endpoint error {cpu_median:.2f} % (median "
         f"over runs), worst single run {cpu_worst:.2f} %", _verdict(cpu_worst <= GOALS["cpu"])],
        ["bytes per call within ±1 %", f"worst {bytes_worst:.4f} %",
         _verdict(bytes_worst <= GOALS["bytes"])],
        ["operations exact", "ledger per call = design in every run: "
         f"{'yes' if ops else 'NO'}; recorded = PostgreSQL's counts: "
         f"{'yes' if pg else 'NO (see runs)'}", _verdict(ops and pg)],
        ["reconciliation error <= 1 %", f"median {float(np.median(recon)):.3f} %, worst "
         f"{max(recon):.3f} %", _verdict(max(recon) <= GOALS["reconciliation"])],
    ]  # fmt: skip


def summarize(results: list[dict[str, Any]], median: pd.DataFrame, runtime: str, rate: int,
              warmup: int, duration: int) -> str:
    """The Markdown of the section: goals, per-endpoint medians, per-run totals."""
    goals = table(["goal", "measured", "verdict"], _goal_rows(median, results))
    per_endpoint = table(["endpoint", "calls", "CPU truth ms", "CPU ledger ms/call",
                          "CPU error %", "Server-Timing ms/call", "bytes truth",
                          "bytes ledger/call", "bytes error %", "reads truth / ledger",
                          "writes truth / ledger", "ops exact (all runs)"],
                         _endpoint_rows(median, results))  # fmt: skip
    runs = table(["run", "priced calls", "Σ ledger EffectiveCost USD", "metered total USD",
                  "reconciliation error %", "summary.json vs ledger %",
                  "DB reads recorded / PostgreSQL", "writes recorded / PostgreSQL / rows",
                  "api metered CPU ÷ designed CPU", "unattributed %",
                  "profile share max gap (points)"], _run_rows(results))  # fmt: skip
    return (f"{len(results)} `harness run`s of the calibrated target ({runtime} runtime): open "
            f"model, {rate} calls/s, {warmup} s warm-up + {duration} s priced, five endpoints by "
            "weight; PostgreSQL as `kind: postgres` (serverless billing: priced per read/write), "
            "the api under usage billing, price book aws-fargate-us-east-1. Per-endpoint values "
            "are medians over the runs.\n\n" + goals + "\n\n" + per_endpoint + "\n\n" + runs +
            "\n\n*api metered CPU ÷ designed CPU*: the target process's whole CPU (usage.parquet:"
            " server threads, HTTP parsing, GC, health checks, the profiler) over the CPU the "
            "handlers were designed to burn. The excess is the api's unattributed compute row; "
            "*unattributed %* is its share of the whole bill, which egress and DB operations "
            "dominate here.")
