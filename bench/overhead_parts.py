"""The parts of the target overhead, measured where they are not drowned in machine noise
(``bench/target_overhead.py`` prints them next to its end-to-end ratios):

* the middleware's own CPU per call: the sample app called in-process as a WSGI app, bare and
  wrapped in ``WSGIMiddleware``, interleaved rounds, no server and no network around it;
* the profiler's CPU per second: idle targets (no requests), profiled vs not, side by side.
  A sampling profiler costs per second, not per request; at a rate R its share of a request
  is this cost / R.
"""

from __future__ import annotations

import io
import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchlib import BENCH, PYTHON, Child, child, median, process_cpu_s, wait_http

from harness.util import free_port


def _environ() -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/cheap", "QUERY_STRING": "",
            "wsgi.input": io.BytesIO(), "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "HTTP_X_HARNESS_ENDPOINT": "GET /cheap"}  # fmt: skip


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


def _per_call_us(app: Any, calls: int) -> float:
    began = time.perf_counter()
    for _ in range(calls):
        for _chunk in app(_environ(), _start_response):
            pass
    return (time.perf_counter() - began) / calls * 1e6


def middleware_us(rounds: int = 7, calls: int = 20_000) -> tuple[float, float]:
    """Median µs per in-process WSGI call of ``GET /cheap``: (bare app, with middleware)."""
    os.environ.pop("HARNESS_PYROSCOPE_URL", None)  # the middleware's fast path, no agent
    from harness.instrument import WSGIMiddleware
    from targets.sample.app import SampleApp

    app = SampleApp()
    wrapped = WSGIMiddleware(app)
    bare, instrumented = [], []
    for _ in range(rounds):
        bare.append(_per_call_us(app, calls))
        instrumented.append(_per_call_us(wrapped, calls))
    return median(bare), median(instrumented)


def idle_cpu_ms_per_s(targets: dict[str, Child], windows: int, seconds: float
                      ) -> dict[str, float]:
    """Median CPU milliseconds per second of each idle target, windows side by side."""
    samples: dict[str, list[float]] = {name: [] for name in targets}
    before = {name: process_cpu_s(proc.pid) for name, proc in targets.items()}
    for _ in range(windows):
        time.sleep(seconds)
        after = {name: process_cpu_s(proc.pid) for name, proc in targets.items()}
        for name in targets:
            samples[name].append((after[name] - before[name]) / seconds * 1000)
        before = after
    return {name: median(values) for name, values in samples.items()}


def profiler_cost_by_rate(receiver: str, rates: tuple[int, ...], tmp: Path, cpus: set[int],
                          seconds: float = 10.0) -> dict[int, float]:
    """CPU ms per second of idle instrumented targets profiled at each sample rate (0: not
    profiled), all side by side on ``cpus``; minus the unprofiled one."""
    with ExitStack() as stack:
        procs = {}
        for rate in (0, *rates):
            port = free_port()
            env = {"PORT": str(port), "HARNESS_SERVICE": f"idle-{rate}",
                   "HARNESS_PYROSCOPE_URL": receiver if rate else "",
                   "HARNESS_PYROSCOPE_SAMPLE_RATE": str(rate or 100)}  # fmt: skip
            argv = [PYTHON, str(BENCH / "sample_variant.py"), "instrumented"]
            proc = stack.enter_context(child(f"idle-{rate}", argv, env, cpus=cpus,
                                             log=tmp / f"idle-{rate}.log"))  # fmt: skip
            wait_http(f"http://127.0.0.1:{port}/health", proc)
            procs[str(rate)] = proc
        time.sleep(2.0)
        cost = idle_cpu_ms_per_s(procs, 2, seconds / 2)
    return {rate: cost[str(rate)] - cost["0"] for rate in rates}


def parts_text(mw: tuple[float, float], idle: dict[str, float], by_rate: dict[int, float],
               per_request: dict[str, dict[str, float]]) -> str:
    """Markdown: the parts, and what they predict for each load (``per_request``: load name
    -> rate and the bare / instrumented CPU µs per request measured end to end)."""
    added = mw[1] - mw[0]
    profiler = idle["profiled"] - idle["instrumented"]
    lines = [
        f"* middleware, in-process: {mw[0]:.1f} µs per `GET /cheap` WSGI call bare, "
        f"{mw[1]:.1f} µs wrapped: **{added:+.1f} µs per call** (median of interleaved rounds);",
        f"* profiler at 100 Hz, idle targets side by side: **{profiler:.2f} ms CPU per second** "
        f"(instrumented {idle['instrumented']:.2f}, profiled {idle['profiled']:.2f}, bare "
        f"{idle['bare']:.2f} ms/s): about {profiler * 10:.0f} µs per sample, so profiling "
        f"stays within 3 % only for a target busy >= {profiler / 0.03 / 10:.0f} % of a core;",
        "* profiler CPU per second at other sample rates (idle, side by side): "
        + ", ".join(f"{rate} Hz {cost:.2f} ms/s" for rate, cost in by_rate.items()) + ";",
        "* predicted from these parts (per-second cost / rate, per-call cost / CPU per request "
        "measured above):",
    ]
    for load, m in per_request.items():
        mw_pct = added / m["bare"] * 100
        prof_pct = profiler * 1000 / m["rate"] / m["instrumented"] * 100
        lines.append(f"  * {load}: middleware {mw_pct:+.1f} %, profiling {prof_pct:+.1f} %")
    return "\n".join(lines)
