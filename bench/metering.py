"""Metering overhead: CPU of the local runtime's meter sampling 10 target processes at 1 Hz.

    .venv/bin/python bench/metering.py [--quick] [--rounds 5] [--seconds 10]

Ten real sample targets (``python -m targets.sample``: waitress, 10 threads each) are the
replicas. In each round, three windows of the same length run back to back in rotating order,
all in this one process:

* ``idle``: sleeping only (the process's baseline);
* ``ProcessMeter``: ``ProcessMeter.sample()`` over the 10 replicas once a second;
* ``Sampler``: the run's full sampling path, ``harness.meter.sampler.Sampler`` (the same meter
  in a gevent greenlet, rows stamped with the phase, a Parquet part every 5 samples);
* with ``--patch FILE``: ``ProcessMeter`` with that patch applied (``bench/patches/``), after
  checking that it sees the same replicas and process trees.

The cost is this process's CPU (user + system) per wall second above the idle window of the same
round, as a percentage of one core; medians over rounds. The docker meter over 10 containers is
measured by ``tests/docker/test_meter_overhead.py``: with ``--docker`` it is run and its lines
are quoted.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import gevent
from benchlib import (
    PYTHON,
    ROOT,
    child,
    load_module,
    median,
    patched_tree,
    spread,
    stop_on_sigterm,
    table,
    wait_http,
    write_section,
)

from harness.meter.base import Meter
from harness.meter.process import ProcessMeter
from harness.meter.sampler import Sampler
from harness.stack.base import Replica
from harness.traffic.recorder import PhaseClock
from harness.util import free_port

REPLICAS = 10


def window(mode: str, meter: Meter, seconds: float, tmp: Path, index: int) -> float:
    """This process's CPU ms per wall second during one window of ``mode``."""
    sampler = Sampler(meter, PhaseClock(), tmp / f"usage-{index}.parquet", interval=1.0)
    cpu0, wall0 = time.process_time(), time.monotonic()
    if mode == "Sampler":
        sampler.start()
        gevent.sleep(seconds)
    elif mode != "idle":
        for tick in range(1, int(seconds) + 1):
            if len(meter.sample()) != REPLICAS:
                raise SystemExit("the meter lost a replica")
            time.sleep(max(0.0, wall0 + tick - time.monotonic()))
    else:
        time.sleep(seconds)
    cost = (time.process_time() - cpu0) / (time.monotonic() - wall0) * 1000
    if mode == "Sampler" and sampler.stop() < REPLICAS * int(seconds):  # compaction: not timed
        raise SystemExit("the sampler wrote fewer rows than expected")
    return cost


def measure(meters: dict[str, Meter], rounds: int, seconds: float, tmp: Path
            ) -> dict[str, list[float]]:
    """Per mode (each meter alone, then the Sampler around the first meter), CPU ms per
    second above the same round's idle window."""
    modes = ["idle", *meters, "Sampler"]
    for meter in meters.values():
        meter.sample()  # warm: psutil.Process objects created once, as in a run
    above: dict[str, list[float]] = {m: [] for m in modes[1:]}
    for r in range(rounds):
        order = modes[r % len(modes):] + modes[: r % len(modes)]
        got = {mode: window(mode, meters.get(mode, meters["ProcessMeter"]), seconds, tmp,
                            r * 10 + i) for i, mode in enumerate(order)}  # fmt: skip
        for mode in modes[1:]:
            above[mode].append(got[mode] - got["idle"])
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{m} {got[m]:.2f} ms/s" for m in modes),
              flush=True)  # fmt: skip
    return above


def same_samples(meters: dict[str, Meter]) -> None:
    """Every meter sees the same replicas alive with the same process trees (RSS within 5 %)."""
    results = [meter.sample() for meter in meters.values()]
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            if a.alive != b.alive or abs(a.rss_bytes - b.rss_bytes) > 0.05 * a.rss_bytes:
                raise SystemExit(f"the meters disagree on {a.replica}: {a} vs {b}")


def docker_lines() -> str:
    """Run the docker engineer's meter overhead test and return its printed lines."""
    done = subprocess.run([PYTHON, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "tests/docker/test_meter_overhead.py"], cwd=ROOT, capture_output=True,
                          text=True, check=False, timeout=1800)  # fmt: skip
    keep = [line for line in done.stdout.splitlines()
            if "ms CPU/s" in line or "passed" in line or "skipped" in line or "failed" in line]
    return "\n".join(keep) or done.stdout[-1500:]


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of 3 s windows")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--docker", action="store_true", help="also run the docker meter test")
    parser.add_argument("--patch", type=Path, help="also measure ProcessMeter with this patch")
    args = parser.parse_args()
    rounds, seconds = (1, 3.0) if args.quick else (args.rounds, args.seconds)
    with tempfile.TemporaryDirectory(prefix="bench-metering-") as name, ExitStack() as stack:
        tmp = Path(name)
        started = []
        for index in range(REPLICAS):
            port = free_port()
            proc = stack.enter_context(child(f"sample-{index}", [PYTHON, "-m", "targets.sample"],
                                             {"PORT": str(port)}, log=tmp / f"{index}.log"))
            wait_http(f"http://127.0.0.1:{port}/health", proc)
            started.append(Replica("api", f"api-{index}", "app", proc.pid, port, 1.0, 2**28))
        meters: dict[str, Meter] = {"ProcessMeter": ProcessMeter(lambda: started)}
        if args.patch is not None:
            patched = load_module("patched_process", patched_tree(args.patch, tmp) / "harness" /
                                  "meter" / "process.py")  # fmt: skip
            meters[f"ProcessMeter + {args.patch.name}"] = patched.ProcessMeter(lambda: started)
            same_samples(meters)
        above = measure(meters, rounds, seconds, tmp)
    rows = [[mode, f"{median(v):.2f}", spread(v), f"**{median(v) / 10:.3f} %**"]
            for mode, v in above.items()]  # fmt: skip
    text = (f"{REPLICAS} sample targets as replicas, 1 Hz, {rounds} rounds of {seconds:g} s "
            "windows (idle and each sampler in rotating order); CPU of the sampling "
            "process above the idle window of the same round.\n\n"
            + table(["what samples", "CPU ms per second (median)", "range", "% of one core"],
                    rows))  # fmt: skip
    if args.docker:
        text += ("\n\nDocker meter, 10 containers (`tests/docker/test_meter_overhead.py`, run "
                 f"by this script):\n\n```\n{docker_lines()}\n```")
    print("\n" + text)
    write_section("metering", "5. Metering overhead", text)


if __name__ == "__main__":
    main()
