"""Throughput with 1 vs 2 local load-generator workers, side by side (P11 goal: 2 workers give
≥ 1.7 × one worker on a target that is not the bottleneck).

The target is Debian's nginx serving a small file (not the bottleneck: wrk gets 5-10 × more
from it, see loadgen.py). Closed model, no think time, interleaved runs (1 worker, 2 workers,
2, 1, ...), medians of ``--runs`` (default 5). Next to req/s, the CPU per request of the
generators (the harness and its workers) and of the target over the measured window, and the
ceiling those costs put on 2 ÷ 1 when workers and target share a small machine's cores.
Writes its section of RESULTS.md.

    .venv/bin/python bench/workers_scaling.py [--runs 5] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from benchlib import median, spread, stop_on_sigterm, table, write_section
from cpuprobe import CpuProbe

ROOT = Path(__file__).resolve().parents[1]
HARNESS = str(Path(sys.executable).with_name("harness"))
TARGET_NAMES = {"nginx"}
TARGET_TEXT = "Debian's nginx (2 worker processes) serving a 100-byte file"

NGINX_CONF = """
daemon off; worker_processes 2; pid {dir}/nginx.pid; error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; server {{ listen 127.0.0.1:__PORT__; root {dir}/www;
        location / {{ }} location /health {{ return 200 "ok"; }} }} }}
"""


def _scenario(tmp: Path, workers: int, duration: float, users: int) -> Path:
    (tmp / "www").mkdir(exist_ok=True)
    (tmp / "www" / "small.txt").write_text("x" * 100)
    conf = tmp / "nginx.conf.tmpl"
    conf.write_text(NGINX_CONF.format(dir=tmp))
    script = (f"sed s/__PORT__/{{port}}/ {conf} > {tmp}/nginx-{{port}}.conf && "
              f"exec nginx -c {tmp}/nginx-{{port}}.conf")
    lines = [f"name: scaling-{workers}", "target:", "  services:", "    api:",
             f"      command: {json.dumps(['sh', '-c', script])}", "      health: /health",
             f"traffic: {{model: closed, users: {users}, workers: {workers}, warmup: 4s, "
             f"duration: {duration}s}}",
             "requests: [{name: small, path: /small.txt}]"]
    out = tmp / f"scaling-{workers}.yaml"
    out.write_text("\n".join(lines) + "\n")
    return out


@dataclass(frozen=True)
class Measured:
    rps: float
    generator_us: float  # CPU of the harness and its workers per request (measured window)
    target_us: float  # CPU of the target (nginx) per request


def _run(scenario: Path, out: Path) -> Measured:
    proc = subprocess.Popen([HARNESS, "run", str(scenario), "--output", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = CpuProbe(proc.pid, "below", keep=lambda name: name in TARGET_NAMES)
    generators = CpuProbe(proc.pid, "tree", keep=lambda name: name not in TARGET_NAMES)
    _, err = proc.communicate(timeout=600)
    target.stop()
    generators.stop()
    if proc.returncode != 0:
        raise SystemExit(f"harness run failed ({proc.returncode}): {err.decode()[-800:]}")
    times = pq.read_table(out / "requests.parquet", columns=["start", "end", "phase"],
                          filters=[("phase", "=", "baseline")]).to_pydict()
    start, end = min(times["start"]), max(times["end"])
    served = len(times["start"])
    return Measured(served / (end - start),
                    generators.cpu_between(start, end) / served * 1e6,
                    target.cpu_between(start, end) / served * 1e6)


def main() -> None:
    stop_on_sigterm()
    if not shutil.which("nginx"):
        raise SystemExit("needs nginx: apt-get install -y nginx-light")
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--users", type=int, default=64)
    args = parser.parse_args()
    got: dict[int, list[Measured]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for i in range(args.runs):
            for workers in (1, 2) if i % 2 == 0 else (2, 1):
                scenario = _scenario(tmp, workers, args.duration, args.users)
                m = _run(scenario, tmp / f"run-{workers}-{i}")
                got[workers].append(m)
                print(f"run {i + 1}: {workers} worker(s) {m.rps:,.0f} req/s, generators "
                      f"{m.generator_us:.0f} µs/req, target {m.target_us:.0f} µs/req", flush=True)
    print(_body(got, args))
    write_section("workers", "8. Scaling out: 1 vs 2 local load-generator workers",
                  _body(got, args))


def _body(got: dict[int, list[Measured]], args: argparse.Namespace) -> str:
    ratios = [b.rps / a.rps for a, b in zip(got[1], got[2], strict=True)]
    one = got[1]
    gen, tgt = median([m.generator_us for m in one]), median([m.target_us for m in one])
    cores = os.cpu_count() or 1
    # With one worker, the generator is CPU-bound on one core; with two, both workers and the
    # target share the machine's cores, so 2 ÷ 1 cannot exceed 2·g / (g + t) on 2 cores.
    ceiling = min(2.0, cores * gen / (gen + tgt)) if cores < 4 else 2.0
    rows = [[f"{w}", f"{median([m.rps for m in got[w]]):,.0f}",
             spread([m.rps for m in got[w]]), f"{median([m.generator_us for m in got[w]]):.0f}",
             f"{median([m.target_us for m in got[w]]):.0f}"] for w in (1, 2)]
    return "\n".join([
        f"Closed model, {args.users} users split over the workers, no think time, "
        f"{args.duration:g} s measured after 4 s warm-up; target: {TARGET_TEXT}; {args.runs} "
        "rounds, 1 and 2 workers side by side in alternating order. Generator CPU is the "
        "harness with its workers (every process but the target's), target CPU nginx's, both "
        "over the measured window, per request.", "",
        table(["workers", "req/s (median)", "range", "generator CPU µs/req",
               "target CPU µs/req"], rows), "",
        f"**2 workers ÷ 1 worker, per round: median {median(ratios):.2f}** (range "
        f"{spread(ratios)}); goal ≥ 1.7. On this {cores}-core machine the target and the "
        f"workers share the cores: with the 1-worker costs above (generator {gen:.0f} µs, "
        f"target {tgt:.0f} µs per request) the ceiling is {cores} × g ÷ (g + t) = "
        f"**{ceiling:.2f}**; " + _versus(median(ratios), ceiling, got),
    ])


def _versus(ratio: float, ceiling: float, got: dict[int, list[Measured]]) -> str:
    if ratio <= ceiling:
        return f"the measured ratio is {ratio / ceiling:.0%} of what the machine allows."
    two = median([m.generator_us for m in got[2]])
    return (f"the measured ratio is above that estimate because two workers spent less "
            f"generator CPU per request ({two:.0f} µs: the run's loop, meter and progress run in "
            "the master, outside the load generators).")


if __name__ == "__main__":
    main()
