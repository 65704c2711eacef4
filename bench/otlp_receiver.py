"""The OTLP receiver: (a) its CPU per span and the spans/s it sustains; (b) how much a target
sending 100 spans per request slows the harness's load generation, measured side by side in
one run (windows with and without the span flood, alternating); (c) what the traceparent
header costs the load generator per request.

    .venv/bin/python bench/otlp_receiver.py [--quick]

(a) ``OtlpReceiver`` (its own process, pinned to the target core) receives SDK-shaped protobuf
exports (``bench/span_flood_target.py``'s spans: 500 per export, the SDK's batch size) from
two sender threads here (pinned to the other core) for ``--seconds``, plain and gzipped; CPU
from the receiver's CPU clock. (b) one ``harness run`` (open model, ``--rate`` req/s) of the
flood target with ``otel.enabled``; every ``--window`` seconds the flood is switched on or off
(off: one SERVER span per request; on: 100 spans per request; off, on, off, ...); per window:
achieved req/s, the harness process's CPU per request, the receiver's CPU; ratios flood / no
flood of the medians. (c) ``make_call`` with and without otel (a fake client: the harness's
own work), and real ``FastHttpSession`` requests to a local target with and without the
header (rounds alternate; medians).
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from benchlib import (
    HARNESS,
    PYTHON,
    child,
    cores,
    median,
    process_cpu_s,
    spread,
    stop_on_sigterm,
    table,
    wait_http,
    write_section,
)
from span_flood_target import MARKER, trace_template

from harness.util import free_port

SPANS_PER_TRACE = 100
TRACES_PER_EXPORT = 5  # 500 spans: the SDK's BatchSpanProcessor exports up to 512


def _payload(gzipped: bool) -> bytes:
    template = trace_template(SPANS_PER_TRACE)
    body = b"".join(template.replace(MARKER, random.randbytes(16))
                    for _ in range(TRACES_PER_EXPORT))  # fmt: skip
    return gzip.compress(body, 1) if gzipped else body


def _send(port: int, body: bytes, gzipped: bool, until: float, sent: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-protobuf"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    count = 0
    while time.monotonic() < until:
        conn.request("POST", "/v1/traces", body, headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"receiver answered {response.status}")
        count += 1
    conn.close()
    sent.append(count * SPANS_PER_TRACE * TRACES_PER_EXPORT)


def receiver_capacity(seconds: float, gzipped: bool) -> dict[str, float]:
    """Receiver CPU per span and spans/s with two senders, receiver and senders pinned apart."""
    from harness.otel.receiver import OtlpReceiver

    gen_core, target_core = cores()
    body = _payload(gzipped)
    with tempfile.TemporaryDirectory() as tmp, OtlpReceiver(Path(tmp)) as receiver:
        pid = receiver._proc.pid  # noqa: SLF001 - the bench reads its CPU clock
        os.sched_setaffinity(pid, target_core)
        for thread in (t for t in os.listdir(f"/proc/{pid}/task")):
            os.sched_setaffinity(int(thread), target_core)
        os.sched_setaffinity(0, gen_core)
        cpu0, wall0 = process_cpu_s(pid), time.monotonic()
        sent: list[int] = []
        until = wall0 + seconds
        senders = [threading.Thread(target=_send, args=(receiver.port, body, gzipped, until,
                                                        sent)) for _ in range(2)]  # fmt: skip
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        cpu, wall = process_cpu_s(pid) - cpu0, time.monotonic() - wall0
        stats = receiver.stop(grace_s=0)
        os.sched_setaffinity(0, gen_core | target_core)
    spans = sum(sent)
    if stats.get("spans") != spans:
        raise SystemExit(f"receiver counted {stats.get('spans')} spans, {spans} sent")
    return {"spans": spans, "us_per_span": cpu / spans * 1e6, "spans_per_s": spans / wall,
            "cores": cpu / wall, "bytes_per_span": len(body) / (SPANS_PER_TRACE *
                                                                TRACES_PER_EXPORT)}  # fmt: skip


SCENARIO = """
name: otlp-flood
target:
  services:
    api:
      command: "{{python}} bench/span_flood_target.py"
      env: {{SPAN_FLOOD_FILE: "{{run_dir}}/flood", SPAN_FLOOD_SPANS: "{spans}"}}
traffic: {{model: open, rate: {rate}, max_in_flight: 256, warmup: 3s, duration: {duration}s}}
requests:
  - {{name: GET /, path: /}}
otel: {{enabled: true, grace: 5s}}
pricing: {{overrides: {{"external:127.0.0.1:9": 0, cache_op: 0, db_read: 0, db_write: 0}}}}
"""


def _baseline_start(run_dir: Path, proc: Any) -> float:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise SystemExit(f"harness run exited with {proc.popen.returncode}")
        try:
            phases = json.loads((run_dir / "manifest.json").read_text())["phases"]
        except (OSError, ValueError, KeyError):
            phases = []
        for phase in phases:
            if phase["name"] == "baseline":
                return float(phase["start"])
        time.sleep(0.05)
    raise SystemExit("the run never reached its baseline phase")


def _receiver_pid(harness_pid: int) -> int:
    import psutil

    for proc in psutil.Process(harness_pid).children(recursive=True):
        if "harness.otel.receiver" in " ".join(proc.cmdline()):
            return int(proc.pid)
    raise SystemExit("no OTLP receiver under the harness process")


def flood_run(rate: int, windows: int, window_s: float, tmp: Path) -> list[dict[str, Any]]:
    """One harness run; the flood switched at each window boundary; per-window figures."""
    scenario = tmp / "flood.yaml"
    scenario.write_text(textwrap.dedent(SCENARIO.format(rate=rate, spans=SPANS_PER_TRACE,
                                                        duration=windows * window_s)))
    run_dir = tmp / "run"
    flag = run_dir / "flood"
    marks: list[tuple[float, float, float, bool]] = []  # (time, harness CPU, receiver CPU, on)
    with child("harness", [HARNESS, "run", str(scenario), "--output", str(run_dir)],
               log=tmp / "harness.log") as proc:  # fmt: skip
        begin = _baseline_start(run_dir, proc)
        receiver = _receiver_pid(proc.pid)
        for index in range(windows + 1):
            at = begin + index * window_s
            time.sleep(max(at - time.time(), 0))
            marks.append((time.time(), process_cpu_s(proc.pid), process_cpu_s(receiver),
                          index % 2 == 1))  # fmt: skip
            if index % 2 == 1:
                flag.write_text("on")
            else:
                flag.unlink(missing_ok=True)
        code = proc.popen.wait(timeout=120)
    if code != 0:
        log = (tmp / "harness.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"harness run exited with {code}:\n{log}")
    return _windows(run_dir, marks)


def _windows(run_dir: Path, marks: list[tuple[float, float, float, bool]]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    starts = sorted(pq.read_table(run_dir / "requests.parquet", columns=["start"])["start"]
                    .to_pylist())  # fmt: skip
    import bisect

    out = []
    for (t0, h0, r0, on), (t1, h1, r1, _) in zip(marks, marks[1:], strict=False):
        # the flood reaches the target up to 0.1 s after the switch: skip the first 0.3 s
        n = bisect.bisect_left(starts, t1) - bisect.bisect_left(starts, t0)
        out.append({"flood": on, "rps": n / (t1 - t0), "gen_us_per_req": (h1 - h0) / n * 1e6,
                    "receiver_cores": (r1 - r0) / (t1 - t0), "requests": n})  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    out.append({"otel": summary["telemetry"]["otel"]})
    return out


def traceparent_cost(rounds: int, calls_per_round: int, tmp: Path) -> dict[str, float]:
    """µs per call: make_call with a fake client, and real FastHttpSession requests."""
    from locust.contrib.fasthttp import FastHttpSession
    from locust.env import Environment

    from harness.scenario import parse_scenario
    from harness.traffic.calls import make_call

    text = "name: c\ntarget: {services: {api: {command: 'true'}}}\nrequests: [{name: r, path: /}]\n"
    plain, traced = (make_call(parse_scenario(text + extra, Path("c.yaml")), random.Random(1))
                     for extra in ("", "otel: {enabled: true}\n"))  # fmt: skip

    class Fake:
        client = type("FakeClient", (), {"request": staticmethod(lambda *a, **k: None)})

    port = free_port()
    env = {"PORT": str(port), "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
           "SPAN_FLOOD_FILE": str(tmp / "never")}  # fmt: skip
    fake: dict[str, list[float]] = {"plain": [], "traced": []}
    real: dict[str, list[float]] = {"plain": [], "traced": []}
    with child("target", [PYTHON, "bench/span_flood_target.py"], env) as proc:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        environment = Environment()
        session = FastHttpSession(f"http://127.0.0.1:{port}", request_event=environment.events
                                  .request, user=None)  # fmt: skip

        class Real:
            client = session

        for index in range(rounds):  # ABBA: which goes first alternates
            pair = [("plain", plain), ("traced", traced)]
            for name, call in pair if index % 2 == 0 else pair[::-1]:
                fake[name].append(_us_per_call(call, Fake, calls_per_round * 20))
                real[name].append(_us_per_call(call, Real, calls_per_round))
    return {"fake_plain": median(fake["plain"]), "fake_traced": median(fake["traced"]),
            "real_plain": median(real["plain"]), "real_traced": median(real["traced"]),
            "real_plain_spread": spread(real["plain"]),
            "real_traced_spread": spread(real["traced"])}  # fmt: skip


def _us_per_call(call: Any, user: Any, calls: int) -> float:
    began = time.process_time()
    for _ in range(calls):
        call(user, None)
    return (time.process_time() - began) / calls * 1e6


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=10.0, help="(a): per variant")
    parser.add_argument("--rate", type=int, default=150, help="(b): requests/s")
    parser.add_argument("--windows", type=int, default=10, help="(b): flood off/on windows")
    parser.add_argument("--window", type=float, default=6.0, help="(b): seconds per window")
    parser.add_argument("--rounds", type=int, default=12, help="(c): rounds")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.windows, args.window, args.rounds = 3.0, 4, 3.0, 3
    capacity = {kind: receiver_capacity(args.seconds, kind == "gzip")
                for kind in ("protobuf", "gzip")}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        windows = flood_run(args.rate, args.windows, args.window, Path(tmp))
        header = traceparent_cost(args.rounds, 3000, Path(tmp))
    body = render(capacity, windows, header, args)
    print(body)
    if not args.quick:
        write_section("otlp-receiver", "OTLP receiver: CPU per span, span flood vs load "
                      "generation, traceparent cost", body)  # fmt: skip


def _paired(windows: list[dict[str, Any]]) -> list[float]:
    """Harness CPU per request of each flood window / the mean of its no-flood neighbours."""
    out = []
    for index, window in enumerate(windows):
        if not window["flood"]:
            continue
        near = [windows[j]["gen_us_per_req"] for j in (index - 1, index + 1)
                if 0 <= j < len(windows) and not windows[j]["flood"]]  # fmt: skip
        if near:
            out.append(window["gen_us_per_req"] / (sum(near) / len(near)))
    return out


def _header_table(header: dict[str, float]) -> str:
    return table(["path", "no otel µs/call", "otel µs/call", "added µs/call"], [
        ("make_call, fake client (the harness's own work)", f"{header['fake_plain']:.2f}",
         f"{header['fake_traced']:.2f}", f"{header['fake_traced'] - header['fake_plain']:.2f}"),
        ("FastHttpSession request to a local target (client CPU)",
         f"{header['real_plain']:.1f} ({header['real_plain_spread']})",
         f"{header['real_traced']:.1f} ({header['real_traced_spread']})",
         f"{header['real_traced'] - header['real_plain']:.1f}"),
    ])  # fmt: skip


def render(capacity: dict[str, dict[str, float]], windows: list[dict[str, Any]],
           header: dict[str, float], args: argparse.Namespace) -> str:
    rows = [(kind, f"{c['spans']:,.0f}", f"{c['bytes_per_span']:.0f}", f"{c['us_per_span']:.1f}",
             f"{c['spans_per_s']:,.0f}", f"{c['cores']:.2f}", f"{1e6 / c['us_per_span']:,.0f}")
            for kind, c in capacity.items()]  # fmt: skip
    part_a = table(["body", "spans", "bytes/span", "receiver CPU µs/span", "spans/s sustained",
                    "receiver cores", "spans/s per core (1/CPU)"], rows)  # fmt: skip
    otel = windows[-1]["otel"]
    win = windows[:-1]
    on = [w for w in win if w["flood"]]
    off = [w for w in win if not w["flood"]]
    wrows = [(i, "on" if w["flood"] else "off", w["requests"], f"{w['rps']:.1f}",
              f"{w['gen_us_per_req']:.0f}", f"{w['receiver_cores']:.3f}")
             for i, w in enumerate(win)]  # fmt: skip
    part_b = table(["window", "flood", "requests", "req/s", "harness CPU µs/req",
                    "receiver cores"], wrows)  # fmt: skip

    def m(rows: list[dict[str, Any]], key: str) -> float:
        return median([r[key] for r in rows])

    paired = _paired(win)
    ratios = (f"flood / no flood (medians of {len(on)} and {len(off)} windows of "
              f"{args.window:.0f} s, {args.rate} req/s asked, {SPANS_PER_TRACE} spans per "
              f"request): achieved req/s **{m(on, 'rps') / m(off, 'rps'):.3f}**, harness CPU "
              f"per request **{m(on, 'gen_us_per_req') / m(off, 'gen_us_per_req'):.3f}** (each "
              f"flood window against the mean of its neighbours, against drift: median "
              f"**{median(paired):.3f}**, range {spread(paired)}); "
              f"receiver {m(on, 'receiver_cores'):.2f} cores with the flood, "
              f"{m(off, 'receiver_cores'):.3f} without. The run's accounting: "
              f"{otel['spans']:,} spans, {otel['requests_traced']:,} traced requests, lost "
              f"{otel['lost_requests']}, late spans {otel['late_spans']}, rejected payloads "
              f"{otel['rejected_payloads']}.")  # fmt: skip
    part_c = _header_table(header)
    return (f"**(a) receiver capacity** ({args.seconds:.0f} s per body, 500-span exports from "
            f"two senders on the other core):\n\n{part_a}\n\n**(b) span flood vs load "
            f"generation**, one run:\n\n{part_b}\n\n{ratios}\n\n**(c) traceparent per "
            f"request** (medians of {args.rounds} alternating rounds):\n\n{part_c}\n")


if __name__ == "__main__":
    sys.exit(main())
