"""How long pricing a run takes, and how much memory, at 1 M and 10 M request records.

    .venv/bin/python bench/ledger_scale.py [--sizes 1000000 10000000] [--keep DIR]

For each size it writes a synthetic run directory (600 s priced, 12 endpoints, 3 tenants, an
app with two replicas plus a cache and a database, full Server-Timing telemetry) in one
subprocess, then runs ``price_run`` (load, ledger, summary with every billing model and the
bootstrap CIs, writes) in a fresh subprocess that reports its wall time per stage and its peak
RSS (``ru_maxrss``). Sizes run side by side in one invocation so their ratio is meaningful.
Goal: 1 M records in <= 15 s and <= 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harness.artifacts import (
    REQUEST_SCHEMA,
    REQUESTS,
    USAGE,
    USAGE_SCHEMA,
    Manifest,
    PhaseWindow,
    write_manifest,
)

DURATION_S = 600.0
WARMUP_S = 10.0
ROW_GROUP = 1_000_000
ENDPOINTS = [f"/api/v1/resource{i}" for i in range(12)]
TENANTS = ["acme", "globex", "initech"]
REPLICAS = {"api-0": ("api", "app"), "api-1": ("api", "app"), "cache-0": ("cache", "cache"),
            "db-0": ("db", "database")}  # fmt: skip


def _dictionary(values: list[str], codes: np.ndarray) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(values))


def _requests(rng: np.random.Generator, n: int, t0: float) -> pa.Table:
    start = np.sort(rng.uniform(t0, t0 + WARMUP_S + DURATION_S, n))
    endpoint = rng.integers(0, len(ENDPOINTS), n)
    latency = rng.lognormal(3.0, 0.6, n) * (1 + endpoint / 6)
    failed = rng.random(n) < 0.01
    columns: dict[str, Any] = {
        "start": start,
        "end": start + latency / 1000,
        "latency_ms": latency,
        "endpoint": _dictionary(ENDPOINTS, endpoint),
        "method": _dictionary(["GET", "POST"], (endpoint % 5 == 0).astype(np.int32)),
        "status": np.where(failed, 500, 200).astype(np.int32),
        "error": pa.array(np.full(n, "HTTP 500"), pa.string(), mask=~failed),
        "bytes_in": np.zeros(n, np.int64),
        "bytes_out": rng.integers(200, 20_000, n),
        "replica": _dictionary(["api-0", "api-1"], rng.integers(0, 2, n)),
        "tenant": _dictionary(TENANTS, rng.integers(0, len(TENANTS), n)),
        "phase": _dictionary(["warmup", "steady"], (start >= t0 + WARMUP_S).astype(np.int32)),
        "variant": pa.nulls(n, pa.string()),
        "cpu_ms": latency * rng.uniform(0.2, 0.6, n),
        "db_reads": rng.integers(0, 4, n),
        "db_writes": rng.integers(0, 2, n),
        "cache_hits": rng.integers(0, 3, n),
        "cache_misses": rng.integers(0, 2, n),
        "external_calls": (endpoint == 0).astype(np.int64),
        "external": pa.array(np.full(n, "payments=1"), pa.string(), mask=endpoint != 0),
        "retries": np.zeros(n, np.int64),
        "log_bytes": rng.integers(100, 600, n),
        "telemetry_malformed": np.zeros(n, bool),
        "late_ms": np.zeros(n),
    }
    arrays = [pa.array(columns[f.name]) if not isinstance(columns[f.name], pa.Array)
              else columns[f.name] for f in REQUEST_SCHEMA]  # fmt: skip
    fields = [f.with_type(a.type) for f, a in zip(REQUEST_SCHEMA, arrays, strict=True)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _usage(t0: float) -> pa.Table:
    rows = []
    for replica, (service, role) in REPLICAS.items():
        rate = {"app": 0.6, "cache": 0.1, "database": 0.3}[role]
        for second in range(int(WARMUP_S + DURATION_S) + 1):
            rows.append({"ts": t0 + second, "service": service, "replica": replica, "role": role,
                         "cpu_s": rate * second, "rss_bytes": 300 * 2**20, "alive": True,
                         "cpu_limit": 1.0, "mem_limit_bytes": 2**30})  # fmt: skip
    return pa.Table.from_pylist(rows, schema=USAGE_SCHEMA)


def generate(run_dir: Path, n: int) -> None:
    """Write a synthetic run of ``n`` requests (row groups of ROW_GROUP, written one by one)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = 1_700_000_000.0
    rng = np.random.default_rng(1)
    writer = None
    for offset in range(0, n, ROW_GROUP):
        table = _requests(rng, min(ROW_GROUP, n - offset), t0)
        writer = writer or pq.ParquetWriter(run_dir / REQUESTS, table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()
    pq.write_table(_usage(t0), run_dir / USAGE)
    services = [{"name": s, "role": r, "replicas": 2 if s == "api" else 1, "cpu": 1.0,
                 "memory": 2**30, "billing": "instance", "entry": s == "api"}
                for s, r in {v for v in REPLICAS.values()}]  # fmt: skip
    phases = [
        PhaseWindow(name="warmup", start=t0, end=t0 + WARMUP_S, priced=False),
        PhaseWindow(name="steady", start=t0 + WARMUP_S, end=t0 + WARMUP_S + DURATION_S),
    ]
    pricing = {"overrides": {"external:payments": 0.002, "db_read": 0.0, "db_write": 0.0}}
    write_manifest(run_dir, Manifest(
        run_id=run_dir.name, scenario_name="bench", scenario_path="bench.yaml",
        scenario={"pricing": pricing}, runtime="local", price_book="aws-lambda-us-east-1",
        status="completed", started_at=t0, ended_at=t0 + WARMUP_S + DURATION_S, phases=phases,
        services=services,
    ))  # fmt: skip


def measure(run_dir: Path) -> dict[str, float]:
    """Price the run stage by stage; wall seconds per stage and peak RSS in MiB."""
    from harness.artifacts.rundata import load_run
    from harness.cost import load_price_book, scenario_overrides
    from harness.cost.ledger import build_ledger, write_ledger
    from harness.report.summary import build_summary, write_summary

    times: dict[str, float] = {}
    began = mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        times[name] = now - mark
        mark = now

    run = load_run(run_dir)
    lap("load_s")
    book = load_price_book(run.manifest.price_book, scenario_overrides(run))
    ledger = build_ledger(run, book)
    lap("ledger_s")
    summary = build_summary(run, ledger)
    lap("summary_s")
    write_ledger(run_dir, ledger)
    write_summary(run_dir, summary)
    lap("write_s")
    times["total_s"] = time.perf_counter() - began
    times["cpu_s"] = time.process_time()
    times["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times["requests"] = float(summary["requests"])
    times["ledger_rows"] = float(len(ledger.rows))
    return times


def _child(*args: str) -> str:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--keep", type=Path, help="write run directories here and keep them")
    parser.add_argument("--generate", nargs=2, metavar=("DIR", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(Path(args.generate[0]), int(args.generate[1]))
        return
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        results = []
        for n in args.sizes:
            run_dir = base / f"bench-{n}"
            _child("--generate", str(run_dir), str(n))
            results.append((n, json.loads(_child("--measure", str(run_dir)))))
    first = results[0][1]["total_s"]
    header = ("records", "load s", "ledger s", "summary s", "write s", "total s", "x first",
              "CPU s", "peak RSS MiB", "rows")  # fmt: skip
    print(" ".join(f"{h:>12}" for h in header))
    for n, r in results:
        cells = [f"{n:,}", *(f"{r[k]:.2f}" for k in ("load_s", "ledger_s", "summary_s",
                 "write_s", "total_s")), f"{r['total_s'] / first:.2f}", f"{r['cpu_s']:.1f}",
                 f"{r['peak_rss_mib']:.0f}", f"{r['ledger_rows']:.0f}"]  # fmt: skip
        print(" ".join(f"{c:>12}" for c in cells))
    print(
        f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
        "(wall times stretch when the machine is shared; CPU s does not)"
    )


if __name__ == "__main__":
    main()
