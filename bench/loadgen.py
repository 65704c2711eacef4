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
Generators always run on the first core and targets on the last (the harness's target, all
its threads, is moved there as soon as it starts), so every run sees the same placement.
Next to throughput, the generator's and the target's own CPU per request over the same window
(Linux's per-process CPU clock) show where a gap comes from. Then ``bench/recording.py``
measures the recording path in µs per request.
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

import numpy as np
import pyarrow.parquet as pq
import recording
from benchlib import (
    BENCH,
    HARNESS,
    PYTHON,
    child,
    cores,
    median,
    pin,
    spread,
    stop_on_sigterm,
    table,
    wait_http,
    write_section,
)
from cpuprobe import CpuProbe

from harness.util import free_port

GOAL = 0.95
LOAD_CPUS, TARGET_CPUS = cores()  # generators on one core, targets on another, every run
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
    """Per generator, one value per round; ratios are to bare Locust in the same round."""

    rps: dict[str, list[float]] = field(default_factory=lambda: {g: [] for g in GENERATORS})
    cpu_us: dict[str, list[float]] = field(default_factory=lambda: {g: [] for g in GENERATORS})
    target_us: dict[str, list[float]] = field(default_factory=lambda: {g: [] for g in GENERATORS})
    ratios: dict[str, list[float]] = field(default_factory=lambda: {"harness": [], "wrk": []})
    cpu_ratios: list[float] = field(default_factory=list)
    failed_runs: Counter[str] = field(default_factory=Counter)

    def add(self, got: dict[str, Measured]) -> None:
        for name, m in got.items():
            self.rps[name].append(m.rps)
            self.cpu_us[name].append(m.cpu_us)
            self.target_us[name].append(m.target_us)
            self.failed_runs[name] += 0 if m.ok else 1
        base = got["locust"]
        self.ratios["harness"].append(got["harness"].rps / base.rps)
        self.ratios["wrk"].append(got["wrk"].rps / base.rps)
        self.cpu_ratios.append(got["harness"].cpu_us / base.cpu_us)


@dataclass(frozen=True)
class Measured:
    rps: float  # completed requests per second over the steady window
    cpu_us: float  # load-generator process CPU per request over that window (NaN for wrk)
    target_us: float  # the target's processes' CPU per request over that window (NaN for wrk)
    ok: int  # requests without an error (whole run)


def steady_window(per_second: Counter[int], skip: int) -> tuple[int, int, int]:
    """Whole seconds after ``skip`` warm-up seconds and before the last (partial) one:
    ``(first second, end second, requests completed in between)``."""
    if not per_second:
        raise SystemExit("no request completed")
    first, last = min(per_second) + skip, max(per_second)
    if last <= first:
        raise SystemExit(f"too few seconds of traffic to measure ({first - skip}..{last})")
    return first, last, sum(per_second.get(s, 0) for s in range(first, last))


def measured(generator: CpuProbe | None, target: CpuProbe, per_second: Counter[int], skip: int,
             ok: int) -> Measured:
    first, end, count = steady_window(per_second, skip)
    per_request = 1e6 / max(count, 1)
    gen_us = generator.cpu_between(first, end) * per_request if generator else float("nan")
    return Measured(count / (end - first), gen_us, target.cpu_between(first, end) * per_request,
                    ok)  # fmt: skip


def _run_probed(argv: list[str], what: str, targets_below: bool = False
                ) -> tuple[CpuProbe, CpuProbe | None]:
    """Run ``argv`` (on the generator core) to completion while probing its CPU and, with
    ``targets_below``, its descendants' (moved to the target core); SystemExit on failure."""
    popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=pin(LOAD_CPUS))  # fmt: skip
    probe = CpuProbe(popen.pid)
    below = CpuProbe(popen.pid, "below", TARGET_CPUS) if targets_below else None
    try:
        out, err = popen.communicate()
    except BaseException:
        popen.terminate()  # the harness tears its stack down on SIGTERM
        popen.wait()
        raise
    finally:
        for each in (probe, below):
            if each is not None:
                each.stop()
    if popen.returncode not in (0, 1):  # locust exits 1 when some requests failed
        raise SystemExit(f"{what} failed ({popen.returncode}):\n{out[-2000:]}\n{err[-2000:]}")
    return probe, below


def run_harness(target: Target, setup: Setup, tmp: Path, index: int) -> Measured:
    scenario = tmp / f"loadgen-{target.name}-{index}.yaml"
    scenario.write_text(SCENARIO.format(target=target.name, command=target.command,
                                        users=setup.users, warmup=setup.warmup,
                                        duration=setup.duration), encoding="utf-8")  # fmt: skip
    run_dir = tmp / f"run-{target.name}-{index}"
    probe, below = _run_probed([HARNESS, "run", str(scenario), "--output", str(run_dir)],
                               "harness run", targets_below=True)  # fmt: skip
    assert below is not None
    columns = pq.read_table(run_dir / "requests.parquet", columns=["start", "latency_ms", "error"])
    ends = columns["start"].to_numpy() + columns["latency_ms"].to_numpy() / 1000
    ok = columns["error"].null_count  # requests without an error
    return measured(probe, below, Counter(ends.astype(np.int64).tolist()), setup.warmup, ok)


def run_locust(url: str, target: CpuProbe, setup: Setup, tmp: Path, index: int) -> Measured:
    stem = tmp / f"locust-{index}"
    users, seconds = str(setup.users), f"{setup.warmup + setup.duration}s"
    argv = [LOCUST, "-f", str(BENCH / "locustfile_bare.py"), "--headless", "--only-summary",
            "-u", users, "-r", users, "-t", seconds, "--host", url, "--json-file", str(stem),
            "--loglevel", "WARNING"]  # fmt: skip
    probe, _ = _run_probed(argv, "locust")
    entries = json.loads(Path(f"{stem}.json").read_text(encoding="utf-8"))
    per_second: Counter[int] = Counter()
    ok = 0
    for entry in entries:
        per_second.update({int(k): v for k, v in entry["num_reqs_per_sec"].items()})
        ok += entry["num_requests"] - entry["num_failures"]
    return measured(probe, target, per_second, setup.warmup, ok)


def run_wrk(url: str, setup: Setup) -> Measured:
    argv = ["wrk", "-t1", f"-c{setup.users}", f"-d{setup.warmup + setup.duration}s", url + "/cheap"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True,
                          preexec_fn=pin(LOAD_CPUS))  # fmt: skip
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if found is None or "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise SystemExit(f"wrk: unexpected output:\n{done.stdout}")
    return Measured(float(found.group(1)), float("nan"), float("nan"), 1)


def measure_one(generator: str, target: Target, setup: Setup, tmp: Path, index: int
                ) -> Measured:
    """One measurement; the bare generators get a fresh target process of their own."""
    if generator == "harness":
        return run_harness(target, setup, tmp, index)
    port = free_port()
    workdir = tmp / f"{target.name}-{generator}-{index}"
    workdir.mkdir()
    with child(target.name, target.argv(port, workdir), {"PORT": str(port)},
               log=workdir / "target.log", cpus=TARGET_CPUS) as proc:  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", proc)
        if generator == "wrk":
            return run_wrk(url, setup)
        probe = CpuProbe(proc.pid, "tree")
        try:
            return run_locust(url, probe, setup, tmp, index)
        finally:
            probe.stop()


def run_rounds(setup: Setup, rounds: int) -> dict[str, Outcome]:
    outcomes = {t.name: Outcome() for t in TARGETS}
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as name:
        tmp = Path(name)
        for r in range(rounds):
            order = GENERATORS[r % 3:] + GENERATORS[: r % 3]  # rotate: no generator always first
            for target in TARGETS:
                got = {g: measure_one(g, target, setup, tmp, r * 10 + i)
                       for i, g in enumerate(order)}  # fmt: skip
                outcomes[target.name].add(got)
                print(f"round {r + 1}/{rounds} {target.name:>6}: " + ", ".join(
                    f"{g} {got[g].rps:7.0f} req/s" for g in GENERATORS) + " | CPU µs/req: " +
                    ", ".join(f"{g} {got[g].cpu_us:5.0f} (target {got[g].target_us:4.0f})"
                              for g in GENERATORS[:2]), flush=True)
    return outcomes


def verdict(ratio: float) -> str:
    return "met" if ratio >= GOAL else f"MISSED by {(GOAL - ratio) * 100:.1f} points"


def summarize(outcomes: dict[str, Outcome], setup: Setup, rounds: int) -> str:
    rows = []
    for name, out in outcomes.items():
        h, w, c = median(out.ratios["harness"]), median(out.ratios["wrk"]), median(out.cpu_ratios)
        rows.append([name, f"{median(out.rps['locust']):.0f}", f"**{h:.3f}**",
                     spread(out.ratios["harness"]), f"{w:.2f}",
                     f"{median(out.cpu_us['locust']):.0f} / {median(out.cpu_us['harness']):.0f}",
                     f"{c:.3f}", f"{median(out.target_us['locust']):.0f} / "
                     f"{median(out.target_us['harness']):.0f}",
                     verdict(h)])  # fmt: skip
    header = ["target", "bare Locust req/s (median, context)", "harness / Locust req/s",
              "range over rounds", "wrk / Locust req/s",
              "generator CPU µs/req: Locust / harness", "harness / Locust CPU per req",
              "target CPU µs/req: Locust run / harness run",
              f"goal req/s ratio >= {GOAL}"]  # fmt: skip
    failed = {n: dict(o.failed_runs) for n, o in outcomes.items() if sum(o.failed_runs.values())}
    return (f"{setup.users} users/connections, closed model, no think time; each run "
            f"{setup.warmup} s warm-up + {setup.duration} s measured; {rounds} rounds, "
            "generators interleaved (rotating order); ratios are medians of per-round ratios. "
            "Generator CPU is the load-generator process's own CPU time (user + system) over "
            "the measured window, per request completed in it; target CPU the same for the "
            "target's processes.\n\n"
            + table(header, rows)
            + (f"\n\nRuns without a single successful request: {failed}" if failed else ""))


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s + 4 s")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--duration", type=int, default=12)
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    setup = Setup(args.users, 3 if args.quick else args.warmup, 4 if args.quick else args.duration)
    outcomes = run_rounds(setup, rounds)
    throughput = summarize(outcomes, setup, rounds)
    print("\n" + throughput)
    cost = recording.measure(*((20_000, 2_000, 3) if args.quick else (200_000, 2_000, 5)))
    locust_us = median([x for o in outcomes.values() for x in o.cpu_us["locust"]])
    added = cost["full_us"] - cost["noop_us"]
    rec = [*recording.report(cost), f"  = {added / locust_us * 100:.1f} % of bare Locust's own "
           f"CPU per request in the runs above ({locust_us:.0f} µs, median)"]  # fmt: skip
    print("\n".join(rec))
    write_section("loadgen", "1. Load generation: harness vs bare Locust vs wrk",
                  throughput + "\n\n```\n" + "\n".join(rec) + "\n```")


if __name__ == "__main__":
    main()
