"""Overhead on targets: CPU per request of the sample target bare, with the instrumentation
middleware, and with the middleware plus Pyroscope profiling at 100 Hz, side by side.

    .venv/bin/python bench/target_overhead.py [--quick] [--rounds 5] [--seconds 10]

Each measurement starts a fresh target process (``bench/sample_variant.py``), offers a load,
and divides the process's own CPU time (user + system, all threads: the profiler's included)
by the requests it served (its ``/stats``) over a window after a warm-up. Loads:

* ``GET /cheap`` saturated by ``wrk -t1 -c4`` (the worst case for a per-request cost);
* ``GET /cheap`` at a fixed 200 requests/s (Locust, ``bench/locustfile_rate.py``), where a
  per-second cost such as the profiler's sampling weighs more per request;
* the quickstart mix (``/cpu?ms=20`` : ``/big?kb=256`` : ``/cheap`` = 2 : 1 : 5) at 40/s.

Profiled targets push to an embedded receiver (``harness.profiling.ProfileReceiver``), as in a
run with ``profiling: {enabled: true}``. Variants are interleaved (rotating order) in every
round; ratios are per round, medians over rounds. Goal: <= 3 % more CPU per request for the
middleware (instrumented / bare) and for profiling (profiled / instrumented).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    BENCH,
    PYTHON,
    Child,
    child,
    get_json,
    median,
    process_cpu_s,
    spread,
    stop_on_sigterm,
    table,
    wait_http,
    write_section,
)

from harness.profiling import ProfileReceiver
from harness.util import free_port

VARIANTS = ("bare", "instrumented", "profiled")
GOAL = 1.03
LOCUST = str(Path(PYTHON).with_name("locust"))
MIX = "/cpu?ms=20:2,/big?kb=256:1,/cheap:5"


@dataclass(frozen=True)
class Load:
    name: str
    paths: str  # BENCH_PATHS for Locust; the single path for wrk
    rate: int | None  # requests/s; None: saturate with wrk


LOADS = (Load("/cheap saturated (wrk -c4)", "/cheap", None),
         Load("/cheap at 200/s", "/cheap:1", 200),
         Load("quickstart mix at 40/s", MIX, 40))  # fmt: skip


def _generator(load: Load, url: str, seconds: float, log: Path) -> list[str]:
    if load.rate is None:
        return ["wrk", "-t1", "-c4", f"-d{int(seconds) + 5}s", url + load.paths]
    return [LOCUST, "-f", str(BENCH / "locustfile_rate.py"), "--headless", "--only-summary",
            "-u", str(load.rate), "-r", str(load.rate), "-t", f"{int(seconds) + 5}s",
            "--host", url, "--loglevel", "WARNING", "--logfile", str(log)]  # fmt: skip


def _snapshot(proc: Child, url: str) -> tuple[float, int]:
    cpu = process_cpu_s(proc.pid)
    stats = get_json(url + "/stats")
    if not isinstance(stats, dict):
        raise SystemExit(f"{url}/stats: unexpected answer {stats!r}")
    return cpu, int(stats["served"])


def measure(variant: str, load: Load, warmup: float, seconds: float, receiver: str,
            tmp: Path) -> float:
    """CPU microseconds per request served by one fresh target under ``load``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"PORT": str(port), "HARNESS_REPLICA": f"{variant}-0",
           "HARNESS_SERVICE": "sample", "HARNESS_PYROSCOPE_URL": ""}  # fmt: skip
    if variant == "profiled":
        env |= {"HARNESS_PYROSCOPE_URL": receiver, "HARNESS_PYROSCOPE_SAMPLE_RATE": "100"}
    argv = [PYTHON, str(BENCH / "sample_variant.py"),
            "instrumented" if variant == "profiled" else variant]  # fmt: skip
    with child(variant, argv, env, log=tmp / f"{variant}.log") as target:
        wait_http(url + "/health", target)
        gen_argv = _generator(load, url, warmup + seconds, tmp / "locust.log")
        with child("load", gen_argv, {"BENCH_PATHS": load.paths}, log=tmp / "load.log"):
            time.sleep(warmup)
            cpu0, served0 = _snapshot(target, url)
            time.sleep(seconds)
            cpu1, served1 = _snapshot(target, url)
    if served1 - served0 <= 0:
        raise SystemExit(f"{variant} served nothing under {load.name}")
    return (cpu1 - cpu0) / (served1 - served0) * 1e6


def run_rounds(rounds: int, warmup: float, seconds: float, tmp: Path
               ) -> dict[str, dict[str, list[float]]]:
    """Per load: per variant, CPU µs per request, one value per round."""
    out = {load.name: {v: [] for v in VARIANTS} for load in LOADS}
    with ProfileReceiver(tmp / "profiles") as receiver:
        for r in range(rounds):
            order = VARIANTS[r % 3:] + VARIANTS[: r % 3]
            for load in LOADS:
                got = {v: measure(v, load, warmup, seconds, receiver.url, tmp) for v in order}
                for v in VARIANTS:
                    out[load.name][v].append(got[v])
                print(f"round {r + 1}/{rounds} {load.name:>28}: " + ", ".join(
                    f"{v} {got[v]:7.1f} µs/req" for v in VARIANTS), flush=True)
        receiver.stop(drain_s=1.0)
    return out


def _ratios(a: list[float], b: list[float]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=True)]


def summarize(results: dict[str, dict[str, list[float]]], rounds: int, seconds: float) -> str:
    rows = []
    for load, cpu in results.items():
        mw = _ratios(cpu["instrumented"], cpu["bare"])
        prof = _ratios(cpu["profiled"], cpu["instrumented"])
        both = _ratios(cpu["profiled"], cpu["bare"])
        rows.append([load, " / ".join(f"{median(cpu[v]):.0f}" for v in VARIANTS),
                     f"**{median(mw):.3f}** ({spread(mw)})", f"**{median(prof):.3f}** "
                     f"({spread(prof)})", f"{median(both):.3f}",
                     _verdict(median(mw)) + " / " + _verdict(median(prof))])  # fmt: skip
    header = ["load", "CPU µs/request bare / instrumented / profiled (medians, context)",
              "middleware: instrumented ÷ bare (range)", "profiling: profiled ÷ instrumented "
              "(range)", "both: profiled ÷ bare", f"goal <= {GOAL} (middleware / profiling)"]
    return (f"{rounds} rounds, each variant a fresh target process, {seconds:g} s measured "
            "after a warm-up; variants interleaved in rotating order; CPU is the target "
            "process's own (all threads), per request it served.\n\n" + table(header, rows))


def _verdict(ratio: float) -> str:
    return "met" if ratio <= GOAL else f"MISSED by {(ratio - GOAL) * 100:.1f} points"


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of 3 s windows")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    rounds, warmup, seconds = (1, 1.5, 3.0) if args.quick else (args.rounds, 3.0, args.seconds)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as name:
        results = run_rounds(rounds, warmup, seconds, Path(name))
    text = summarize(results, rounds, seconds)
    print("\n" + text)
    write_section("target-overhead", "4. Overhead on targets: middleware and profiling", text)


if __name__ == "__main__":
    main()
