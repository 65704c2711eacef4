"""The parts of the target overhead, measured where machine noise does not drown them
(``bench/target_overhead.py`` prints the first two next to its end-to-end ratios):

* the middleware's CPU per call: the sample app called in-process, bare and wrapped in
  ``WSGIMiddleware``, interleaved rounds, no server and no network around it;
* the profiler's CPU per second: idle targets, profiled vs not, side by side (a sampler costs
  per second, not per request: at R requests/s its share of one is this cost / R);
* ``main()``: the Pyroscope agent's own threads' CPU (``/proc/PID/task/TID/schedstat``) per
  ``pyroscope.configure`` variant, in probes holding 8 blocked threads as waitress does: idle
  side by side, then one thread busy (24 frames deep, holding the GIL) in interleaved rounds;
  what each profile got right (busy CPU under its tag, blocked threads counted as CPU); and
  the tagging context manager per call, warm and cold (one call per 5 ms); and what an
  in-process Python sampler would pay per sample before recording anything (a thread's
  wake-up at 100 Hz, ``sys._current_frames()``, each thread's CPU clock and stack).

    .venv/bin/python bench/overhead_parts.py [--quick] [--rounds 5]   # section 4b
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchlib import (
    BENCH,
    PYTHON,
    Child,
    child,
    cores,
    median,
    pin,
    process_cpu_s,
    stop_on_sigterm,
    table,
    wait_http,
    write_section,
)

from harness.util import free_port

_, TARGET_CPUS = cores()
PROBE_THREADS = 8  # blocked threads, as waitress' worker threads (serve_wsgi: threads=8)
# probe spec: "harness" (configured by harness.instrument) or configure() options (enums by
# member name), "stack_profiler" (its options), "threads" (blocked threads).
AGENT_VARIANTS: dict[str, dict[str, Any]] = {
    "harness (as configured now)": {"harness": True},
    "pyroscope defaults (before)": {},
    "oncpu=False": {"oncpu": False},
    "gil_only=False": {"gil_only": False},
    "report_pid/thread_id/thread_name": {"report_pid": True, "report_thread_id": True,
                                         "report_thread_name": True},  # fmt: skip
    "enable_logging": {"enable_logging": True},
    "line_no=First": {"line_no": "First"},
    "line_no=NoLine": {"line_no": "NoLine"},
    "cpu_implementation=Stack, fixed rate": {"cpu_implementation": "Stack",
                                             "stack_profiler": {"adaptive_sampling": False}},
    "defaults, 2 blocked threads": {"threads": 2},
    "defaults, 32 blocked threads": {"threads": 32},
}


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
    lines.append("* the agent's cost by `pyroscope.configure` option and the tagging cost per "
                 "request: `bench/overhead_parts.py` (section 4b).")
    return "\n".join(lines)


def _probe_run_ns(tids: set[int]) -> int:
    """CPU nanoseconds the threads ``tids`` of this process ran (one that ended: 0)."""
    paths = [Path(f"/proc/self/task/{tid}/schedstat") for tid in tids]
    return sum(int(path.read_text().split()[0]) for path in paths if path.exists())


def _probe_start(spec: dict[str, Any], url: str, service: str) -> Any:
    """Configure the agent as ``spec`` says; the tagging context manager factory."""
    import pyroscope

    if spec.get("harness"):
        from harness.instrument.environment import pyroscope_tag_wrapper

        os.environ.pop("HARNESS_PYROSCOPE_SAMPLE_RATE", None)
        os.environ.update(HARNESS_PYROSCOPE_URL=url, HARNESS_SERVICE=service)
        return pyroscope_tag_wrapper(service)
    options = {k: v for k, v in spec.items() if k not in ("threads", "stack_profiler")}
    if "stack_profiler" in spec:
        pyroscope.configure_experimental_stack_profiler(**spec["stack_profiler"])
    for key, enum in (("line_no", "LineNo"), ("cpu_implementation", "ProfilerImplementation")):
        if key in options:  # an enum member by name
            options[key] = getattr(getattr(pyroscope, enum), options[key])
    if not pyroscope.configure(application_name=service, server_address=url, sample_rate=100,
                               tags={"replica": service}, **options):  # fmt: skip
        raise SystemExit(f"pyroscope.configure refused {spec}")
    return pyroscope.tag_wrapper


def _probe_busy(depth: int, seconds: float) -> None:
    """Hold the GIL for ``seconds``, ``depth`` frames below the caller."""
    if depth:
        return _probe_busy(depth - 1, seconds)
    x, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for i in range(500):
            x = (x * 31 + i) & 0xFFFF


def _probe_tag_costs(tag: Any, rounds: int = 5) -> dict[str, float]:
    """µs per ``with tag(...)``, above a ``nullcontext``, warm and one call per 5 ms."""
    from contextlib import nullcontext

    import pyroscope

    makers = {"none": lambda tags: nullcontext(), "pyroscope.tag_wrapper": pyroscope.tag_wrapper,
              "harness": tag}  # fmt: skip
    out: dict[str, list[float]] = {}
    for pace, calls in ((0.0, 50_000), (0.005, 200)):
        per: dict[str, list[float]] = {name: [] for name in makers}
        for _ in range(rounds):
            for name, make in makers.items():
                began = time.thread_time()
                for _ in range(calls):
                    with make({"endpoint": "GET /cheap"}):
                        pass
                    if pace:
                        time.sleep(pace)
                per[name].append((time.thread_time() - began) / calls * 1e6)
        for name in ("pyroscope.tag_wrapper", "harness"):
            key = f"{name} {'cold' if pace else 'warm'}"
            out[key] = [a - b for a, b in zip(per[name], per["none"], strict=True)]
    return {key: median(values) for key, values in out.items()}


class _Blocked:
    """Threads blocked as a server's are, under a tag: waiting on an event (as waitress'
    workers do) or sleeping in a loop (waking 20 times a second)."""

    def __init__(self, count: int) -> None:
        import queue
        import threading

        self.done, self.handoff = threading.Event(), queue.SimpleQueue[Any]()
        self.threads = [threading.Thread(target=self._run, args=(n % 2,)) for n in range(count)]
        for thread in self.threads:
            thread.start()

    def _run(self, sleeps: int) -> None:
        with self.handoff.get()({"endpoint": "blocked"}):
            while sleeps and not self.done.is_set():
                time.sleep(0.05)
            self.done.wait()

    def start(self, tag: Any) -> None:
        for _ in self.threads:
            self.handoff.put(tag)

    def stop(self) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join()


def probe(spec: dict[str, Any], url: str, service: str) -> None:
    """Child process: blocked threads, the agent, then commands from stdin (``idle S``,
    ``busy S``: agent-thread CPU ms/s; ``tags``: tagging µs per call; ``quit``)."""
    blocked = _Blocked(spec.get("threads", PROBE_THREADS))
    before = {int(tid) for tid in os.listdir("/proc/self/task")}
    tag = _probe_start(spec, url, service)
    blocked.start(tag)
    time.sleep(0.5)
    agent = {int(tid) for tid in os.listdir("/proc/self/task")} - before
    print(json.dumps({"ready": len(agent)}), flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "quit":
            break
        if command == "tags":
            print(json.dumps(_probe_tag_costs(tag)), flush=True)
            continue
        began, run_ns = time.monotonic(), _probe_run_ns(agent)
        if command == "busy":
            with tag({"endpoint": "busy"}):
                _probe_busy(20, float(arg))  # 24 frames deep
        else:
            time.sleep(float(arg))
        spent = (_probe_run_ns(agent) - run_ns) / 1e6 / (time.monotonic() - began)
        print(json.dumps({"ms_per_s": spent}), flush=True)
    blocked.stop()
    import pyroscope

    pyroscope.shutdown()  # flushes the last upload window


class _Probe:
    """A probe child on the target core, driven line by line."""

    def __init__(self, spec: dict[str, Any], url: str, service: str) -> None:
        argv = [PYTHON, str(Path(__file__).resolve()), "probe", json.dumps(spec), url, service]
        self.popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, start_new_session=True,
                                      preexec_fn=pin(TARGET_CPUS))  # fmt: skip
        self.reply()  # ready

    def send(self, command: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(command + "\n")
        self.popen.stdin.flush()

    def reply(self) -> dict[str, float]:
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()
        if not line:
            raise SystemExit(f"probe {self.popen.args[3]} exited with {self.popen.wait()}")
        return dict(json.loads(line))

    def close(self) -> None:
        """``quit`` (the agent flushes its profile), then kill if it does not exit."""
        try:
            self.send("quit")
            self.popen.wait(15)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.popen.kill()
            self.popen.wait()


def _agent_cpu(probes: dict[str, _Probe], rounds: int, idle_s: float, busy_s: float
               ) -> tuple[dict[str, float], dict[str, float]]:
    """Median agent CPU ms/s per probe: idle (all at once), busy (one after the other)."""
    idle: dict[str, list[float]] = {name: [] for name in probes}
    busy: dict[str, list[float]] = {name: [] for name in probes}
    for _ in range(2):
        for p in probes.values():
            p.send(f"idle {idle_s / 2}")
        for name, p in probes.items():
            idle[name].append(p.reply()["ms_per_s"])
    names = list(probes)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            probes[name].send(f"busy {busy_s}")
            busy[name].append(probes[name].reply()["ms_per_s"])
    return ({n: median(v) for n, v in idle.items()}, {n: median(v) for n, v in busy.items()})


def agent_costs(rounds: int, idle_s: float, busy_s: float
                ) -> tuple[list[list[str]], dict[str, float]]:
    """The agent variants side by side: table rows and the tagging costs per call."""
    from harness.profiling import ProfileReceiver, cpu_by_endpoint

    services = {name: f"probe-{n}" for n, name in enumerate(AGENT_VARIANTS)}
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp, \
            ProfileReceiver(Path(tmp) / "profiles") as receiver:  # fmt: skip
        with ExitStack() as stack:
            probes = {}
            for name, spec in (*AGENT_VARIANTS.items(), ("tags", {"harness": True})):
                probes[name] = _Probe(spec, receiver.url, services.get(name, "probe-tags"))
                stack.callback(probes[name].close)
            tagger = probes.pop("tags")  # its own process: its profile is left out
            tagger.send("tags")
            tags = tagger.reply()
            idle, busy = _agent_cpu(probes, rounds, idle_s, busy_s)
        receiver.stop(drain_s=1.0)  # the agents flushed on quit
        rows = []
        for name, service in services.items():
            cpu = cpu_by_endpoint(receiver.out_dir, service=service)
            rows.append([name, f"{idle[name]:.2f}", f"{busy[name]:.1f}",
                         f"{cpu.get('busy', 0.0) / (sum(cpu.values()) or 1.0):.0%}",
                         f"{cpu.get('blocked', 0.0):.2f}"])  # fmt: skip
    return rows, tags


def _tick_loop(kind: str, ticks: int, out: list[float]) -> None:
    """One in-process sampler's loop without the sampling: ``ticks`` wake-ups at 100 Hz doing
    ``kind``; its own thread CPU per tick (µs) is appended to ``out``."""
    import threading

    idents = [t.ident for t in threading.enumerate() if t.ident != threading.get_ident()]
    clocks = [time.pthread_getcpuclockid(i) for i in idents if i is not None]
    began = time.thread_time_ns()
    for _ in range(ticks):
        time.sleep(0.01)
        if kind != "wake":
            frames = sys._current_frames()
        if kind == "wake + frames + clocks":
            for clock in clocks:
                time.clock_gettime_ns(clock)
            for frame in frames.values():  # the stacks: what a sample would record
                while frame is not None:
                    frame = frame.f_back
    out.append((time.thread_time_ns() - began) / ticks / 1000)


INPROCESS_KINDS = ("wake", "wake + frames", "wake + frames + clocks")


def inprocess_tick_us(rounds: int, ticks: int = 200) -> dict[str, float]:
    """What an in-process Python sampler would pay per sample here, with 8 blocked threads
    beside it (median µs of thread CPU per tick, kinds interleaved): a thread's wake-up from
    ``time.sleep``, plus ``sys._current_frames()``, plus each thread's CPU clock and stack."""
    import threading

    blocked = threading.Event()
    sleepers = [threading.Thread(target=blocked.wait) for _ in range(PROBE_THREADS)]
    for thread in sleepers:
        thread.start()
    got: dict[str, list[float]] = {kind: [] for kind in INPROCESS_KINDS}
    try:
        for r in range(rounds):
            for kind in INPROCESS_KINDS[r % 3:] + INPROCESS_KINDS[: r % 3]:
                loop = threading.Thread(target=_tick_loop, args=(kind, ticks, got[kind]))
                loop.start()
                loop.join()
    finally:
        blocked.set()
        for thread in sleepers:
            thread.join()
    return {kind: median(values) for kind, values in got.items()}


def agent_text(rows: list[list[str]], tags: dict[str, float], rounds: int,
               ticks: dict[str, float]) -> str:
    header = ["`pyroscope.configure` (100 Hz)",
              f"agent threads' CPU, idle, {PROBE_THREADS} blocked threads (ms/s, side by side)",
              f"same, one thread busy with a 24-frame stack (ms/s, median of {rounds} "
              "interleaved rounds)", "profile: busy CPU under its tag",
              "profile: blocked threads counted as CPU (s)"]  # fmt: skip
    return (table(header, rows) + "\n\n* tagging one request (`with tag({...})`), above a "
            "`nullcontext`: `pyroscope.tag_wrapper` "
            f"{tags['pyroscope.tag_wrapper warm']:.2f} µs warm, "
            f"{tags['pyroscope.tag_wrapper cold']:.1f} µs cold (one call per 5 ms); the "
            f"harness's `_ThreadTags` {tags['harness warm']:.2f} µs warm, "
            f"{tags['harness cold']:.1f} µs cold.\n"
            "* why the harness does not sample in process instead (a Python thread reading "
            "`sys._current_frames()` and each thread's CPU clock, tagging from a dict): its "
            f"thread CPU per sample, {PROBE_THREADS} blocked threads beside it, median of "
            f"{rounds} interleaved rounds: " + ", ".join(
                f"{kind} {us:.0f} µs" for kind, us in ticks.items())
            + f" = {ticks[INPROCESS_KINDS[-1]] / 10:.1f} ms/s at 100 Hz while idle, before "
            "recording anything, against the agent's threads' idle cost in the table; and "
            "unlike the agent, it needs the GIL for every sample, taking it from the thread "
            "it samples.")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "probe":
        probe(json.loads(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description="the Pyroscope agent's cost by configuration")
    parser.add_argument("--quick", action="store_true", help="two short rounds")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds, idle_s, busy_s = (2, 4.0, 1.5) if args.quick else (args.rounds, 10.0, 3.0)
    ticks = inprocess_tick_us(rounds)
    rows, tags = agent_costs(rounds, idle_s, busy_s)
    text = agent_text(rows, tags, rounds, ticks)
    print("\n" + text)
    write_section("overhead-parts", "4b. Overhead on targets: the Pyroscope agent by "
                  "configuration", text)


if __name__ == "__main__":
    main()
