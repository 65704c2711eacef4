"""Load generation without the machine's noise: instructions per request of ``harness run`` and
of bare Locust, counted by Valgrind's callgrind over a window of steady load.

    .venv/bin/python bench/loadgen_work.py [--quick] [--rounds 2] [--window 40]

Timing the two generators on this shared 2-core VM, even at the same time on the two cores,
gives per-round ratios spread over ±15 % (``bench/loadgen.py``, its A/A rounds): neighbours
change a core's speed from second to second. Instructions executed per request do not depend
on that. Each generator runs under ``valgrind --tool=callgrind --instr-atstart=no`` on the
first core against Debian's nginx (``bench/nginx_target.py``, its own or the one the harness
starts) on the other, 10 users, closed model, no think time. Once requests flow, counting is
switched on (``callgrind_control -i on``, counters zeroed), left on for ``--window`` seconds
and dumped; the requests served in between are read from nginx's ``stub_status``. Everything
the generator process executes is counted: Locust, the harness's recording, flushes, meters,
progress line and run loop, all threads. Python under Valgrind runs ~35x slower, so the
generators serve ~100 requests a second, and what a generator spends per second whatever the
load (timers, the fixed part of the harness's 1-s flush, progress and meters) weighs ~35x
more per request than natively. Each generator is therefore counted at two rates, loaded (no
think time) and slow (1 s of think time), and instructions per second are fitted as
``per_second + rate x per_request``; the cost per request at native rates is ``per_request +
per_second / rate``. Rounds alternate the order; bare Locust's instructions per request ÷ the
harness's is the capacity ratio (a generator with a core to itself completes requests at a
rate inverse to its work per request; the goal is >= 0.95 at the ~3,000 req/s Locust reaches
on one core here).
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
from benchlib import (
    BENCH,
    HARNESS,
    LOCUST,
    PYTHON,
    child,
    cores,
    pin,
    stop_on_sigterm,
    table,
    wait_http,
    write_section,
)

from harness.util import free_port

GOAL = 0.95
USERS = 10
LOAD_CPUS, TARGET_CPUS = cores()
VALGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--vgdb=yes"]
SCENARIO = """name: loadgen-work
target:
  services:
    api:
      command: "{{python}} {nginx} {{port}} {{run_dir}}"
      health: /health
traffic:
  model: closed
  users: {users}
  spawn_rate: {users}
  think_time: {think}
  warmup: 0s
  duration: 3600s
requests:
  - name: GET /cheap
    path: /cheap
"""
SLOW_THINK_S = 1.0
SLOW_LOCUSTFILE = f"""from locust import FastHttpUser, constant, task


class SlowUser(FastHttpUser):  # bench/locustfile_bare.py with think time
    wait_time = constant({SLOW_THINK_S:g})

    @task
    def cheap(self):
        self.client.get("/cheap", name="GET /cheap")
"""


def served(port: int) -> int:
    """Requests nginx has served so far (``stub_status``; it counts the status reads too:
    one of them falls inside a window of thousands of requests)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as answer:
        text = answer.read().decode()
    found = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s*$", text, re.MULTILINE)
    if found is None:
        raise SystemExit(f"unexpected stub_status answer: {text!r}")
    return int(found.group(3))


def harness_nginx_port(pid: int, timeout: float = 300.0) -> int:
    """The port of the nginx a ``harness run`` (under Valgrind) started, once it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in psutil.Process(pid).children(recursive=True):
            try:
                if proc.name() != "nginx":
                    continue
                for conn in proc.net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN:
                        return int(conn.laddr.port)
            except psutil.Error:
                continue
        time.sleep(1.0)
    raise SystemExit("the harness's nginx never listened")


def wait_steady(port: int, slow: bool, timeout: float = 600.0) -> None:
    """Until requests are served at a steady pace (three 2-s polls in a row grew)."""
    deadline, last, grew = time.monotonic() + timeout, served(port), 0
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = served(port)
        grew = grew + 1 if now > last + (USERS if slow else 20) else 0
        last = now
        if grew >= 3:
            return
    raise SystemExit("the load never started under Valgrind")


def callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True,
                   timeout=120)  # fmt: skip


def count_window(pid: int, port: int, window: float, out: Path) -> tuple[int, int]:
    """(instructions, requests) over ``window`` seconds of steady load."""
    callgrind(pid, "-i", "on")
    callgrind(pid, "-z")
    first = served(port)
    time.sleep(window)
    last = served(port)
    callgrind(pid, "-d")
    callgrind(pid, "-i", "off")
    dumps = sorted(out.parent.glob(out.name + "*"), key=lambda p: p.stat().st_mtime)
    if not dumps:
        raise SystemExit(f"callgrind wrote no dump next to {out}")
    totals = re.search(r"^(?:summary|totals):\s*(\d+)", dumps[-1].read_text(errors="replace"),
                       re.MULTILINE)  # fmt: skip
    if totals is None:
        raise SystemExit(f"{dumps[-1]}: no instruction total")
    return int(totals.group(1)), last - first


def stop(popen: subprocess.Popen[bytes]) -> None:
    """The generator's whole session: SIGTERM, then SIGKILL after 60 s (Valgrind is slow)."""
    try:
        group = psutil.Process(popen.pid).children(recursive=True)
    except psutil.Error:
        group = []
    popen.send_signal(signal.SIGTERM)
    try:
        popen.wait(60)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
    for proc in group:
        try:
            proc.kill()
        except psutil.Error:
            continue


def run_locust(tmp: Path, index: int, window: float, slow: bool) -> tuple[int, int]:
    port, workdir = free_port(), tmp / f"nginx-{index}"
    workdir.mkdir()
    locustfile = BENCH / "locustfile_bare.py"
    if slow:
        locustfile = tmp / "locustfile_slow.py"
        locustfile.write_text(SLOW_LOCUSTFILE, encoding="utf-8")
    with child("nginx", [PYTHON, str(BENCH / "nginx_target.py"), str(port), str(workdir)],
               log=workdir / "nginx.log", cpus=TARGET_CPUS) as proc:  # fmt: skip
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        out = tmp / f"cg-locust-{index}.out"
        argv = [*VALGRIND, f"--callgrind-out-file={out}", LOCUST, "-f", str(locustfile),
                "--headless", "--only-summary", "-u", str(USERS), "-r", str(USERS),
                "-t", "3600s", "--host", f"http://127.0.0.1:{port}",
                "--loglevel", "WARNING"]  # fmt: skip
        popen = _start(argv, tmp / f"locust-{index}.log")
        try:
            wait_steady(port, slow)
            return count_window(popen.pid, port, window, out)
        finally:
            stop(popen)


def run_harness(tmp: Path, index: int, window: float, slow: bool) -> tuple[int, int]:
    scenario = tmp / f"loadgen-work-{index}.yaml"
    scenario.write_text(SCENARIO.format(nginx=BENCH / "nginx_target.py",
                                        think=f"{SLOW_THINK_S if slow else 0:g}s", users=USERS),
                        encoding="utf-8")  # fmt: skip
    out = tmp / f"cg-harness-{index}.out"
    argv = [*VALGRIND, f"--callgrind-out-file={out}", HARNESS, "run", str(scenario),
            "--output", str(tmp / f"run-{index}")]  # fmt: skip
    popen = _start(argv, tmp / f"harness-{index}.log")
    try:
        port = harness_nginx_port(popen.pid)
        for proc in psutil.Process(popen.pid).children(recursive=True):
            proc.cpu_affinity(sorted(TARGET_CPUS))
        wait_steady(port, slow)
        return count_window(popen.pid, port, window, out)
    finally:
        stop(popen)


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=pin(LOAD_CPUS))  # fmt: skip


@dataclass
class Work:
    """One generator's windows: (requests per second, instructions per second), at both rates."""

    points: list[tuple[float, float]] = field(default_factory=list)

    def fit(self) -> tuple[float, float]:
        """(instructions per second whatever the load, instructions per request): a least
        squares line through the points."""
        rates = np.array([r for r, _ in self.points])
        speeds = np.array([i for _, i in self.points])
        per_request, per_second = np.polyfit(rates, speeds, 1)
        return float(per_second), float(per_request)

    def at_rate(self, rate: float) -> float:
        """Instructions per request at ``rate`` requests a second."""
        per_second, per_request = self.fit()
        return per_request + per_second / rate


def measure(rounds: int, window: float) -> tuple[dict[str, Work], list[list[object]]]:
    work = {"locust": Work(), "harness": Work()}
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-work-") as name:
        tmp = Path(name)
        index = 0
        for r in range(rounds):
            order = ("locust", "harness") if r % 2 == 0 else ("harness", "locust")
            for slow in (False, True):
                for kind in order:
                    runner = run_locust if kind == "locust" else run_harness
                    index += 1
                    instructions, requests = runner(tmp, index, window, slow)
                    work[kind].points.append((requests / window, instructions / window))
                    mode = f"{SLOW_THINK_S:g} s think time" if slow else "no think time"
                    rows.append([r + 1, kind, mode, f"{requests / window:.1f}",
                                 f"{instructions / window / 1e6:.1f}",
                                 f"{instructions / max(requests, 1) / 1e3:.0f}"])  # fmt: skip
                    print(f"round {r + 1}/{rounds} {kind:>7}, {mode}: {requests} requests, "
                          f"{instructions / 1e9:.3f} G instructions in {window:g} s", flush=True)
    return work, rows


def summarize(work: dict[str, Work], rows: list[list[object]], rounds: int,
              window: float) -> str:  # fmt: skip
    fits = [[kind, f"{w.fit()[0] / 1e6:.2f}", f"{w.fit()[1] / 1e3:.1f}"]
            + [f"{w.at_rate(r) / 1e3:.1f}" for r in RATES] for kind, w in work.items()]
    capacity = {r: work["locust"].at_rate(r) / work["harness"].at_rate(r) for r in RATES}
    goal = capacity[RATES[-1]]
    verdict = "met" if goal >= GOAL else f"MISSED by {(GOAL - goal) * 100:.1f} points"
    return (f"{rounds} rounds of {window:g}-s windows counted by callgrind, {USERS} users, "
            "closed model, nginx `/cheap`, each generator with no think time and with "
            f"{SLOW_THINK_S:g} s of it:\n\n"
            + table(["round", "generator", "load", "req/s under Valgrind",
                     "M instructions per second", "k instructions per request"], rows)
            + "\n\nFitted, instructions per second = per second + rate x per request:\n\n"
            + table(["generator", "per second, whatever the load (M)", "per request (k)"]
                    + [f"per request at {r:,} req/s (k)" for r in RATES], fits)
            + "\n\n**Capacity, bare Locust's instructions per request ÷ the harness's: "
            + ", ".join(f"{capacity[r]:.3f} at {r:,} req/s" for r in RATES)
            + f"**; goal >= {GOAL} at {RATES[-1]:,} req/s, about what bare Locust completes "
            f"on one core of this VM (section 1): {verdict}.")


RATES = (1000, 3000)  # native request rates the counts are projected to


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, 15-s windows")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--window", type=float, default=40.0)
    args = parser.parse_args()
    rounds, window = (1, 15.0) if args.quick else (args.rounds, args.window)
    work, rows = measure(rounds, window)
    text = summarize(work, rows, rounds, window)
    print("\n" + text)
    write_section("loadgen-work", "1b. Load generation: instructions per request (callgrind)",
                  text)


if __name__ == "__main__":
    main()
