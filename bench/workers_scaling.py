"""Throughput with 1 vs 2 local load-generator workers, side by side (P11 goal: 2 workers give
≥ 1.7 × one worker on a target that is not the bottleneck).

The target is Debian's nginx serving a small file when installed (it is not the bottleneck),
else the sample target's /health with 2 replicas. Closed model, no think time, interleaved
runs (1 worker, 2 workers, 1, 2, ...), medians of ``--runs`` (default 5).

    .venv/bin/python bench/workers_scaling.py [--runs 5] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARNESS = str(Path(sys.executable).with_name("harness"))

NGINX_CONF = """
daemon off; worker_processes 2; pid {dir}/nginx.pid; error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; server {{ listen 127.0.0.1:__PORT__; root {dir}/www;
        location / {{ }} location /health {{ return 200 "ok"; }} }} }}
"""


def _scenario(tmp: Path, workers: int, duration: float, users: int) -> Path:
    if shutil.which("nginx"):
        (tmp / "www").mkdir(exist_ok=True)
        (tmp / "www" / "small.txt").write_text("x" * 100)
        conf = tmp / "nginx.conf.tmpl"
        conf.write_text(NGINX_CONF.format(dir=tmp))
        script = (f"sed s/__PORT__/{{port}}/ {conf} > {tmp}/nginx-{{port}}.conf && "
                  f"exec nginx -c {tmp}/nginx-{{port}}.conf")
        service = [f"command: {json.dumps(['sh', '-c', script])}", "health: /health"]
        path = "/small.txt"
    else:
        service = ['command: "{python} -m targets.sample"', "replicas: 2"]
        path = "/health"
    lines = [f"name: scaling-{workers}", "target:", "  services:", "    api:",
             *[f"      {line}" for line in service],
             f"traffic: {{model: closed, users: {users}, workers: {workers}, warmup: 2s, "
             f"duration: {duration}s}}",
             f"requests: [{{name: small, path: {path}}}]"]
    out = tmp / f"scaling-{workers}.yaml"
    out.write_text("\n".join(lines) + "\n")
    return out


def _run(scenario: Path, out: Path) -> float:
    subprocess.run([HARNESS, "run", str(scenario), "--output", str(out)], cwd=ROOT,
                   check=True, capture_output=True, timeout=600)
    summary = json.loads((out / "summary.json").read_text())
    return float(summary["achieved_rps"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--users", type=int, default=64)
    args = parser.parse_args()
    rates: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for i in range(args.runs):
            for workers in (1, 2):
                scenario = _scenario(tmp, workers, args.duration, args.users)
                rates[workers].append(_run(scenario, tmp / f"run-{workers}-{i}"))
                print(f"run {i + 1}: {workers} worker(s) {rates[workers][-1]:,.0f} req/s",
                      flush=True)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    ratios = [b / a for a, b in zip(rates[1], rates[2], strict=True)]
    print(f"\nmedian of {args.runs}: 1 worker {one:,.0f} req/s, 2 workers {two:,.0f} req/s; "
          f"2 ÷ 1 per round (side by side): median {statistics.median(ratios):.2f} "
          f"(range {min(ratios):.2f}–{max(ratios):.2f}); ratio of medians {two / one:.2f}; "
          f"goal >= 1.7; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
