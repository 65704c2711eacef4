"""Soak: a steady open-model load for a long time; the harness's memory must stay flat after
warm-up (≤ 10 % growth), its file descriptors must not grow, and every request the target
served must be recorded exactly once.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 50]

The harness process is sampled every 10 s (RSS, open fds) from outside with psutil; the target
writes its served count at shutdown (SAMPLE_STATS_FILE). Appends its section to RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
HARNESS = str(Path(sys.executable).with_name("harness"))
SCENARIO = """
name: soak
target:
  services:
    api:
      command: "{{python}} -m targets.sample"
      env: {{SAMPLE_STATS_FILE: "{{run_dir}}/served.json"}}
traffic: {{model: open, rate: {rate}, warmup: 60s, duration: {seconds}s}}
requests:
  - {{name: cheap, path: /cheap, weight: 5}}
  - {{name: cpu, path: "/cpu?ms=2", weight: 2}}
  - {{name: big, path: "/big?kb=64", weight: 1}}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        scenario = tmp / "soak.yaml"
        seconds = int(args.minutes * 60)
        scenario.write_text(SCENARIO.format(rate=args.rate, seconds=seconds))
        run_dir = tmp / "run"
        proc = subprocess.Popen([HARNESS, "run", str(scenario), "--output", str(run_dir)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples = _sample(psutil.Process(proc.pid), proc)
        _, err = proc.communicate()
        records = len(pd.read_parquet(run_dir / "requests.parquet"))
        served = json.loads((run_dir / "served.json").read_text())["served"]
        _report(args, samples, records, served, proc.returncode, err.decode()[-500:])


def _sample(harness: psutil.Process, proc: subprocess.Popen[bytes]) -> list[tuple[float, int, int]]:
    samples = []
    start = time.time()
    while proc.poll() is None:
        try:
            samples.append((time.time() - start, harness.memory_info().rss, harness.num_fds()))
        except psutil.Error:
            break
        time.sleep(10)
    return samples


def _trend(samples: list[tuple[float, int, int]]) -> list[tuple[str, float, float]]:
    """Median RSS (MiB) and open fds in each fifth of the sampled load."""
    start, end = samples[0][0], samples[-1][0]
    width = (end - start) / 5 or 1.0
    out = []
    for i in range(5):
        part = [s for s in samples if start + i * width <= s[0] <= start + (i + 1) * width]
        if part:
            label = f"{(part[0][0] - start) / 60:.1f}–{(part[-1][0] - start) / 60:.1f} min"
            out.append((label, statistics.median(s[1] for s in part) / 2**20,
                         statistics.median(s[2] for s in part)))
    return out


def _report(args: argparse.Namespace, samples: list[tuple[float, int, int]], records: int,
            served: int, code: int | None, err: str) -> None:
    # From the end of warm-up (60 s) and start-up to the end of the measured load: the last
    # seconds are the end-of-run analysis (Parquet compaction, pricing, report), not the soak.
    end = 60 + args.minutes * 60
    after = [s for s in samples if 90 <= s[0] <= end]
    first, last = after[0], after[-1]
    peak = max(s[1] for s in after)
    growth = (last[1] - first[1]) / first[1] * 100
    fds = (first[2], last[2], max(s[2] for s in after))
    trend = _trend(after)
    lines = [
        "<!-- bench:soak -->", "## 7. Soak (harness memory, file descriptors, records)", "",
        f"*{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} CPUs; load "
        f"average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}.*", "",
        "```sh", f".venv/bin/python bench/soak.py --minutes {args.minutes:g} --rate {args.rate:g}",
        "```", "",
        "| measure | value | goal |", "|---|---|---|",
        f"| harness RSS after warm-up → end (peak) | {first[1] / 2**20:.0f} → {last[1] / 2**20:.0f}"
        f" MiB ({peak / 2**20:.0f}) | |",
        f"| RSS growth after warm-up | {growth:+.1f} % | ≤ 10 % |",
        f"| open fds after warm-up → end (max) | {fds[0]} → {fds[1]} ({fds[2]}) | no growth |",
        f"| records / requests served | {records:,} / {served:,} | equal |",
        f"| exit code | {code} | 0 |", "",
        "Over time (medians of the 10-s samples in each fifth of the load; open fds include "
        "the pool's keep-alive connections (one per user that has called, up to "
        "`max_in_flight`), renewed every 5 s, so single samples move):", "",
        "| part of the load | RSS MiB | open fds |", "|---|---|---|",
        *[f"| {label} | {rss:.1f} | {fd:.0f} |" for label, rss, fd in trend],
        "<!-- /bench:soak -->", ""]
    text = "\n".join(lines)
    print(text if code == 0 else text + "\n" + err)
    results = ROOT / "bench" / "RESULTS.md"
    old = results.read_text() if results.exists() else "# Benchmark results\n\n"
    if "<!-- bench:soak -->" in old:
        head, _, rest = old.partition("<!-- bench:soak -->")
        old = head + rest.partition("<!-- /bench:soak -->")[2].lstrip("\n")
    results.write_text(old.rstrip("\n") + "\n\n" + text)


if __name__ == "__main__":
    main()
