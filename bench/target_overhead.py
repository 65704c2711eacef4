"""Overhead on targets: CPU per request of the sample target bare, with the instrumentation
middleware, and with the middleware plus Pyroscope profiling at 100 Hz, side by side.

    .venv/bin/python bench/target_overhead.py [--quick] [--rounds 5] [--windows 6]

Each round starts the variants as fresh processes side by side (``bench/sample_variant.py``:
bare app, ``WSGIMiddleware``, middleware + Pyroscope agent at 100 Hz pushing to an embedded
``harness.profiling.ProfileReceiver`` as a run with ``profiling: {enabled: true}`` does, and
the same at 20 Hz for contrast, on the ``/cheap`` loads) and offers each the same fixed-rate
load at the same time (one Locust per target, ``bench/locustfile_rate.py``). Running them at
once, rather than one after the other, and pinning all targets to the same core (the Locusts
to another one) puts them under the same machine conditions: on this shared machine the CPU a
request costs drifts by tens of percent from minute to minute, and two identical unpinned
processes started together differed by 40 % for a whole minute (A/A test), while pinned ones
agree within 3 %.
Loads, in turn:

* ``GET /cheap`` at 300/s and at 100/s (a per-request cost weighs most on the cheapest call; a
  per-second cost such as the profiler's sampling weighs more at the lower rate);
* the quickstart mix (``/cpu?ms=20`` : ``/big?kb=256`` : ``/cheap`` = 2 : 1 : 5) at 40/s;
* A/A: ``/cheap`` at 300/s offered to two identical bare processes, the method's own noise.

CPU per request = the process's own CPU clock (user + system, all threads: the profiler's
included; nanosecond resolution) / requests it served (its ``/stats``), per window after a
warm-up. Ratios are per window; medians over all windows of all rounds. Goal: <= 3 % more CPU
per request for the middleware (instrumented / bare) and for profiling (profiled /
instrumented).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    BENCH,
    LOCUST,
    PYTHON,
    Child,
    child,
    cores,
    get_json,
    median,
    process_cpu_s,
    spread,
    stop_on_sigterm,
    table,
    wait_http,
    write_section,
)
from overhead_parts import (
    idle_cpu_ms_per_s,
    middleware_us,
    parts_text,
    profiler_cost_by_rate,
)

from harness.profiling import ProfileReceiver
from harness.util import free_port

VARIANTS = ("bare", "instrumented", "profiled", "profiled-20hz", "bare-again")
COMPARED = VARIANTS[:4]  # all but the A/A load's second bare process
SAMPLE_RATES = {"profiled": 100, "profiled-20hz": 20}  # Pyroscope agent samples per second
LOAD_CPUS, TARGET_CPUS = cores()  # all targets share one core, the load generators the other
GOAL = 1.03
MIX = "/cpu?ms=20:2,/big?kb=256:1,/cheap:5"


AA_LOAD = "A/A: /cheap at 300/s, two bare processes"


@dataclass(frozen=True)
class Load:
    name: str
    paths: str  # BENCH_PATHS for Locust
    rate: int  # requests/s
    variants: tuple[str, ...] = VARIANTS  # the variants offered this load


# The mix costs ~6 ms CPU per request: four variants at 40/s would need the whole shared core
# (queues of seconds, windows cutting through hundreds of requests in flight), so the 20 Hz
# contrast runs on the /cheap loads only.
LOADS = (Load("/cheap at 300/s", "/cheap:1", 300, COMPARED),
         Load("/cheap at 100/s", "/cheap:1", 100, COMPARED),
         Load("quickstart mix at 40/s", MIX, 40, VARIANTS[:3]),
         Load(AA_LOAD, "/cheap:1", 300, ("bare", "bare-again")))  # fmt: skip


def _generator(load: Load, url: str, seconds: float, log: Path) -> list[str]:
    return [LOCUST, "-f", str(BENCH / "locustfile_rate.py"), "--headless", "--only-summary",
            "-u", str(load.rate), "-r", str(load.rate), "-t", f"{int(seconds) + 5}s",
            "--host", url, "--loglevel", "WARNING", "--logfile", str(log)]  # fmt: skip


def _snapshot(targets: dict[str, tuple[Child, str]]) -> dict[str, tuple[float, int]]:
    """Per variant: (CPU seconds, requests served so far), read back to back."""
    out = {}
    for variant, (proc, url) in targets.items():
        cpu = process_cpu_s(proc.pid)
        stats = get_json(url + "/stats")
        if not isinstance(stats, dict):
            raise SystemExit(f"{url}/stats: unexpected answer {stats!r}")
        out[variant] = (cpu, int(stats["served"]))
    return out


@contextmanager
def targets_up(receiver: str, tmp: Path, turn: int) -> Iterator[dict[str, tuple[Child, str]]]:
    """The variants, fresh processes side by side: variant -> (process, base URL); started in
    an order rotated by ``turn``."""
    with ExitStack() as stack:
        out = {}
        turn %= len(VARIANTS)
        for variant in VARIANTS[turn:] + VARIANTS[:turn]:
            port = free_port()
            env = {"PORT": str(port), "HARNESS_REPLICA": f"{variant}-0",
                   "HARNESS_SERVICE": "sample", "HARNESS_PYROSCOPE_URL": ""}  # fmt: skip
            if variant in SAMPLE_RATES:
                env |= {"HARNESS_PYROSCOPE_URL": receiver,
                        "HARNESS_PYROSCOPE_SAMPLE_RATE": str(SAMPLE_RATES[variant])}
            argv = [PYTHON, str(BENCH / "sample_variant.py"),
                    "bare" if variant.startswith("bare") else "instrumented"]  # fmt: skip
            proc = stack.enter_context(child(variant, argv, env, log=tmp / f"{variant}.log",
                                             cpus=TARGET_CPUS))
            out[variant] = (proc, f"http://127.0.0.1:{port}")
        for proc, url in out.values():
            wait_http(url + "/health", proc)
        yield out


def measure_load(targets: dict[str, tuple[Child, str]], load: Load, warmup: float,
                 windows: int, seconds: float, tmp: Path) -> dict[str, list[float]]:
    """The same load offered to its variants at once; CPU µs per request per window."""
    targets = {v: targets[v] for v in load.variants}
    out: dict[str, list[float]] = {v: [] for v in load.variants}
    total = warmup + windows * seconds
    with ExitStack() as stack:
        for variant, (_, url) in targets.items():
            argv = _generator(load, url, total, tmp / f"locust-{variant}.log")
            stack.enter_context(child(f"load {variant}", argv, {"BENCH_PATHS": load.paths},
                                      log=tmp / f"load-{variant}.log", cpus=LOAD_CPUS))  # fmt: skip
        time.sleep(warmup)
        before = _snapshot(targets)
        for _ in range(windows):
            time.sleep(seconds)
            after = _snapshot(targets)
            for v in load.variants:
                served = after[v][1] - before[v][1]
                if served <= 0:
                    raise SystemExit(f"{v} served nothing under {load.name}")
                out[v].append((after[v][0] - before[v][0]) / served * 1e6)
            before = after
    return out


def run_rounds(rounds: int, warmup: float, windows: int, seconds: float, tmp: Path
               ) -> tuple[dict[str, dict[str, list[float]]], dict[str, float], dict[int, float]]:
    """Per load: per variant, CPU µs per request, one value per window (all rounds); per
    variant the idle CPU ms per second (median over rounds); the profiler's CPU ms per second
    by sample rate."""
    out = {load.name: {v: [] for v in VARIANTS} for load in LOADS}
    idle: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with ProfileReceiver(tmp / "profiles") as receiver:
        for r in range(rounds):
            with targets_up(receiver.url, tmp, r) as targets:
                time.sleep(warmup)
                got_idle = idle_cpu_ms_per_s({v: p for v, (p, _) in targets.items()}, 2, seconds)
                for v in VARIANTS:
                    idle[v].append(got_idle[v])
                for load in LOADS:
                    got = measure_load(targets, load, warmup, windows, seconds, tmp)
                    for v in load.variants:
                        out[load.name][v] += got[v]
                    print(f"round {r + 1}/{rounds} {load.name:>24}: " + ", ".join(
                        f"{v} {median(got[v]):7.1f} µs/req" for v in load.variants), flush=True)
        by_rate = profiler_cost_by_rate(receiver.url, (100, 50, 20), tmp, TARGET_CPUS)
        receiver.stop(drain_s=1.0)
    return out, {v: median(values) for v, values in idle.items()}, by_rate


def _ratios(a: list[float], b: list[float]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=True)]


def summarize(results: dict[str, dict[str, list[float]]], rounds: int, windows: int,
              seconds: float) -> str:
    rows = []
    for load, cpu in results.items():
        if load == AA_LOAD:
            continue
        mw = _ratios(cpu["instrumented"], cpu["bare"])
        prof = _ratios(cpu["profiled"], cpu["instrumented"])
        both = _ratios(cpu["profiled"], cpu["bare"])
        slow = _ratios(cpu["profiled-20hz"], cpu["instrumented"]) if cpu["profiled-20hz"] else []
        rows.append([load, " / ".join(f"{median(cpu[v]):.0f}" if cpu[v] else "-"
                                      for v in COMPARED),
                     f"**{median(mw):.3f}** ({spread(mw)})", f"**{median(prof):.3f}** "
                     f"({spread(prof)})", f"{median(both):.3f}",
                     _verdict(median(mw)) + " / " + _verdict(median(prof)),
                     f"{median(slow):.3f} ({spread(slow)})" if slow else "-"])  # fmt: skip
    header = ["load", "CPU µs/request bare / instrumented / profiled / profiled at 20 Hz "
              "(medians, context)", "middleware: instrumented ÷ bare (range)",
              "profiling at 100 Hz: profiled ÷ instrumented (range)", "both: profiled ÷ bare",
              f"goal <= {GOAL} (middleware / profiling)",
              "profiling at 20 Hz ÷ instrumented (range)"]  # fmt: skip
    aa = _ratios(results[AA_LOAD]["bare-again"], results[AA_LOAD]["bare"])
    return (f"{rounds} rounds x {windows} windows of {seconds:g} s per load; the variants "
            "run side by side under the same load at the same time; ratios per window, "
            "medians over all windows (range in brackets).\n\n" + table(header, rows)
            + f"\n\nThe method's own noise (A/A): two identical bare processes side by side "
            f"under /cheap at 300/s, second ÷ first: **{median(aa):.3f}** ({spread(aa)}).")


def _verdict(ratio: float) -> str:
    return "met" if ratio <= GOAL else f"MISSED by {(ratio - GOAL) * 100:.1f} points"


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, two 3 s windows")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    rounds, windows = (1, 2) if args.quick else (args.rounds, args.windows)
    seconds = 3.0 if args.quick else args.seconds
    mw = middleware_us()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as name:
        results, idle, by_rate = run_rounds(rounds, 3.0, windows, seconds, Path(name))
    per_request = {load.name: {"rate": float(load.rate),
                               "bare": median(results[load.name]["bare"]),
                               "instrumented": median(results[load.name]["instrumented"])}
                   for load in LOADS if load.name != AA_LOAD}  # fmt: skip
    text = summarize(results, rounds, windows, seconds) + (
        "\n\nWhere the overhead comes from (measured apart, see `bench/overhead_parts.py`):\n\n"
        + parts_text(mw, idle, by_rate, per_request))
    print("\n" + text)
    write_section("target-overhead", "4. Overhead on targets: middleware and profiling", text)


if __name__ == "__main__":
    main()
