"""Load generation: ``harness run`` vs bare ``locust --headless`` vs ``wrk`` on the same target.

    .venv/bin/python bench/loadgen.py [--quick] [--rounds 5] [--users 10] [--duration 12]

Two fast targets, each a fresh process per measurement: Debian's nginx serving a ~100-byte
static file (``bench/nginx_target.py``) and the sample target's ``GET /cheap``. Each round runs,
per target, the three generators in a rotating order for the same wall time (warm-up +
duration), closed model, the same number of users/connections, no think time:

* ``harness run`` (closed model, one Locust process in the harness, everything recorded);
* bare ``locust --headless`` with a FastHttpUser (``bench/locustfile_bare.py``);
* ``wrk -t1 -c USERS`` (C, a ceiling for what the target can serve here).

Harness and Locust throughput are computed the same way, from completed requests per wall
second (Locust's ``num_reqs_per_sec``, the harness's ``requests.parquet``), dropping the warm-up
seconds and the last, partial second. The ratios harness/Locust and wrk/Locust are taken per
round (adjacent runs) and their median is the claim. Goal: harness >= 0.95 x bare Locust.
Then ``bench/recording.py`` measures the recording path in µs per request.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import recording
from benchlib import (
    BENCH,
    HARNESS,
    PYTHON,
    child,
    median,
    spread,
    table,
    wait_http,
    write_section,
)

from harness.util import free_port

GOAL = 0.95
GENERATORS = ("harness", "locust", "wrk")
LOCUST = str(Path(PYTHON).with_name("locust"))
SCENARIO = """name: loadgen-{target}
target:
  services:
    api:
      command: "{command}"
      health: /health
traffic:
  model: closed
  users: {users}
  spawn_rate: {users}
  warmup: {warmup}s
  duration: {duration}s
requests:
  - name: GET /cheap
    path: /cheap
"""


@dataclass(frozen=True)
class Target:
    name: str
    command: str  # the scenario's command ({python} {port} {run_dir} filled by the harness)
    argv: Callable[[int, Path], list[str]]  # the same target started by this script


TARGETS = (
    Target("nginx", f"{{python}} {BENCH / 'nginx_target.py'} {{port}} {{run_dir}}",
           lambda port, tmp: [PYTHON, str(BENCH / "nginx_target.py"), str(port), str(tmp)]),
    Target("sample", "{python} -m targets.sample",
           lambda port, tmp: [PYTHON, "-m", "targets.sample"]),
)  # fmt: skip


@dataclass(frozen=True)
class Setup:
    users: int
    warmup: int
    duration: int


@dataclass
class Outcome:
    rps: dict[str, list[float]] = field(default_factory=lambda: {g: [] for g in GENERATORS})
    errors: Counter[str] = field(default_factory=Counter)
    ratios: dict[str, list[float]] = field(default_factory=lambda: {"harness": [], "wrk": []})


def steady_rate(per_second: Counter[int], skip: int) -> float:
    """Completed requests per second over whole seconds, after ``skip`` warm-up seconds and
    before the last (partial) second."""
    if not per_second:
        return 0.0
    first, last = min(per_second), max(per_second)
    seconds = range(first + skip, last)
    if not seconds:
        raise SystemExit(f"too few seconds of traffic to measure ({first}..{last})")
    return sum(per_second.get(s, 0) for s in seconds) / len(seconds)


def run_harness(target: Target, setup: Setup, tmp: Path, index: int) -> tuple[float, int]:
    scenario = tmp / f"loadgen-{target.name}-{index}.yaml"
    scenario.write_text(SCENARIO.format(target=target.name, command=target.command,
                                        users=setup.users, warmup=setup.warmup,
                                        duration=setup.duration), encoding="utf-8")  # fmt: skip
    run_dir = tmp / f"run-{target.name}-{index}"
    done = subprocess.run([HARNESS, "run", str(scenario), "--output", str(run_dir)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"harness run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    table_ = pq.read_table(run_dir / "requests.parquet", columns=["start", "latency_ms", "error"])
    ends = [s + ms / 1000 for s, ms in zip(table_["start"].to_pylist(),
                                          table_["latency_ms"].to_pylist(), strict=True)]  # fmt: skip
    ok = table_["error"].null_count  # requests without an error
    return steady_rate(Counter(int(e) for e in ends), setup.warmup), ok


def run_locust(url: str, setup: Setup, tmp: Path, index: int) -> tuple[float, int]:
    stem = tmp / f"locust-{index}"
    argv = [LOCUST, "-f", str(BENCH / "locustfile_bare.py"), "--headless", "--only-summary",
            "-u", str(setup.users), "-r", str(setup.users), "-t", f"{setup.warmup + setup.duration}s",
            "--host", url, "--json-file", str(stem), "--loglevel", "WARNING"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):  # 1: some requests failed (counted below)
        raise SystemExit(f"locust failed ({done.returncode}):\n{done.stderr[-2000:]}")
    entries = json.loads(Path(f"{stem}.json").read_text(encoding="utf-8"))
    per_second: Counter[int] = Counter()
    ok = 0
    for entry in entries:
        per_second.update({int(k): v for k, v in entry["num_reqs_per_sec"].items()})
        ok += entry["num_requests"] - entry["num_failures"]
    return steady_rate(per_second, setup.warmup), ok


def run_wrk(url: str, setup: Setup) -> float:
    argv = ["wrk", "-t1", f"-c{setup.users}", f"-d{setup.warmup + setup.duration}s", url + "/cheap"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if found is None or "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise SystemExit(f"wrk: unexpected output:\n{done.stdout}")
    return float(found.group(1))


def measure_one(generator: str, target: Target, setup: Setup, tmp: Path, index: int,
                out: Outcome) -> float:
    """One measurement; the bare generators get a fresh target process of their own."""
    if generator == "harness":
        rps, ok = run_harness(target, setup, tmp, index)
        out.errors[generator] += 0 if ok else 1
        return rps
    port = free_port()
    workdir = tmp / f"{target.name}-{generator}-{index}"
    workdir.mkdir()
    with child(target.name, target.argv(port, workdir), {"PORT": str(port)},
               log=workdir / "target.log") as proc:  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", proc)
        if generator == "wrk":
            return run_wrk(url, setup)
        rps, ok = run_locust(url, setup, tmp, index)
        out.errors[generator] += 0 if ok else 1
        return rps


def run_rounds(setup: Setup, rounds: int) -> dict[str, Outcome]:
    outcomes = {t.name: Outcome() for t in TARGETS}
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as name:
        tmp = Path(name)
        for r in range(rounds):
            order = GENERATORS[r % 3:] + GENERATORS[: r % 3]  # rotate: no generator always first
            for target in TARGETS:
                out = outcomes[target.name]
                got = {g: measure_one(g, target, setup, tmp, r * 10 + i, out)
                       for i, g in enumerate(order)}  # fmt: skip
                for g, rps in got.items():
                    out.rps[g].append(rps)
                out.ratios["harness"].append(got["harness"] / got["locust"])
                out.ratios["wrk"].append(got["wrk"] / got["locust"])
                print(f"round {r + 1}/{rounds} {target.name:>6}: " + ", ".join(
                    f"{g} {got[g]:8.0f} req/s" for g in GENERATORS), flush=True)
    return outcomes


def summarize(outcomes: dict[str, Outcome], setup: Setup, rounds: int) -> str:
    rows = []
    for name, out in outcomes.items():
        h, w = median(out.ratios["harness"]), median(out.ratios["wrk"])
        rows.append([name, f"{median(out.rps['locust']):.0f}", f"**{h:.3f}**",
                     spread(out.ratios["harness"]), f"{w:.2f}",
                     "met" if h >= GOAL else f"MISSED by {(GOAL - h) * 100:.1f} points"])  # fmt: skip
    header = ["target", "bare Locust req/s (median, context only)", "harness / Locust",
              "range over rounds", "wrk / Locust", f"goal >= {GOAL}"]  # fmt: skip
    errors = {n: dict(o.errors) for n, o in outcomes.items() if sum(o.errors.values())}
    return (f"{setup.users} users/connections, closed model, no think time; each run "
            f"{setup.warmup} s warm-up + {setup.duration} s measured; {rounds} rounds, "
            "generators interleaved (rotating order); ratios are medians of per-round ratios.\n\n"
            + table(header, rows)
            + (f"\n\nRuns without a single successful request: {errors}" if errors else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s + 4 s")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--duration", type=int, default=12)
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    setup = Setup(args.users, 3 if args.quick else args.warmup, 4 if args.quick else args.duration)
    throughput = summarize(run_rounds(setup, rounds), setup, rounds)
    print("\n" + throughput)
    rec = recording.report(recording.measure(*((20_000, 2_000, 3) if args.quick
                                               else (200_000, 2_000, 5))))  # fmt: skip
    print("\n".join(rec))
    write_section("loadgen", "1. Load generation: harness vs bare Locust vs wrk",
                  throughput + "\n\n```\n" + "\n".join(rec) + "\n```")


if __name__ == "__main__":
    main()
