"""Metering overhead: CPU of the local runtime's meter sampling 10 target processes at 1 Hz.

    .venv/bin/python bench/metering.py [--quick] [--rounds 5] [--seconds 10]

Ten real sample targets (``python -m targets.sample``: waitress, 10 threads each) are the
replicas. In each round, three windows of the same length run back to back in rotating order,
all in this one process:

* ``idle``: sleeping only (the process's baseline);
* ``ProcessMeter``: ``ProcessMeter.sample()`` over the 10 replicas once a second;
* ``Sampler``: the run's full sampling path, ``harness.meter.sampler.Sampler`` (the same meter
  in a gevent greenlet, rows stamped with the phase, a Parquet part every 5 samples).

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
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import gevent
from benchlib import (
    PYTHON,
    ROOT,
    child,
    median,
    spread,
    stop_on_sigterm,
    table,
    wait_http,
    write_section,
)

from harness.meter.process import ProcessMeter
from harness.meter.sampler import Sampler
from harness.stack.base import Replica
from harness.traffic.recorder import PhaseClock
from harness.util import free_port

REPLICAS = 10
MODES = ("idle", "ProcessMeter", "Sampler")


def window(mode: str, meter: ProcessMeter, seconds: float, tmp: Path, index: int) -> float:
    """This process's CPU ms per wall second during one window of ``mode``."""
    cpu0, wall0 = time.process_time(), time.monotonic()
    if mode == "ProcessMeter":
        for tick in range(1, int(seconds) + 1):
            if len(meter.sample()) != REPLICAS:
                raise SystemExit("the meter lost a replica")
            time.sleep(max(0.0, wall0 + tick - time.monotonic()))
    elif mode == "Sampler":
        sampler = Sampler(meter, PhaseClock(), tmp / f"usage-{index}.parquet", interval=1.0)
        sampler.start()
        gevent.sleep(seconds)
        if sampler.stop() < REPLICAS * int(seconds):
            raise SystemExit("the sampler wrote fewer rows than expected")
    else:
        time.sleep(seconds)
    return (time.process_time() - cpu0) / (time.monotonic() - wall0) * 1000


def measure(replicas: Callable[[], list[Replica]], rounds: int, seconds: float, tmp: Path
            ) -> dict[str, list[float]]:
    """Per mode, CPU ms per second above the same round's idle window."""
    meter = ProcessMeter(replicas)
    meter.sample()  # warm: psutil.Process objects created once, as in a run
    above: dict[str, list[float]] = {m: [] for m in MODES[1:]}
    for r in range(rounds):
        order = MODES[r % 3:] + MODES[: r % 3]
        got = {mode: window(mode, meter, seconds, tmp, r) for mode in order}
        for mode in MODES[1:]:
            above[mode].append(got[mode] - got["idle"])
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{m} {got[m]:.2f} ms/s" for m in MODES),
              flush=True)  # fmt: skip
    return above


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
        above = measure(lambda: started, rounds, seconds, tmp)
    rows = [[mode, f"{median(v):.2f}", spread(v), f"**{median(v) / 10:.3f} %**"]
            for mode, v in above.items()]  # fmt: skip
    text = (f"{REPLICAS} sample targets as replicas, 1 Hz, {rounds} rounds of {seconds:g} s "
            "windows (idle / ProcessMeter / Sampler in rotating order); CPU of the sampling "
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
