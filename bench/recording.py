"""The harness's recording path, in microseconds per request: ``Recorder.on_request`` (Locust's
``request`` event listener) plus its share of ``Recorder.flush`` (Server-Timing parsing, Arrow
columns, one zstd Parquet part), against a no-op listener called the same way.

    .venv/bin/python bench/recording.py [--quick]

The events carry real ``FastResponse`` objects: a sample target is started and answers one
``GET /cheap`` and one ``GET /cpu?ms=0`` (with ``Server-Timing``) through Locust's
``FastHttpSession``; those events are then replayed ``--records`` times, flushed every
``--batch`` records (the run flushes once a second, so a batch is one second of traffic at
that rate). Rounds alternate no-op and recorder; medians over the rounds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import PYTHON, child, median, spread, stop_on_sigterm, wait_http

from harness.traffic.recorder import PhaseClock, Recorder
from harness.util import free_port


def real_events() -> list[dict[str, Any]]:
    """The keyword arguments of two real Locust ``request`` events from the sample target."""
    from locust.contrib.fasthttp import FastHttpSession
    from locust.env import Environment

    port = free_port()
    with child("sample", [PYTHON, "-m", "targets.sample"], {"PORT": str(port)}) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", proc)
        env = Environment()
        events: list[dict[str, Any]] = []
        env.events.request.add_listener(lambda **kw: events.append(kw))
        session = FastHttpSession(url, request_event=env.events.request, user=None)
        context = {"tenant": "acme", "bytes_in": 0, "late_ms": None}
        session.request("GET", "/cheap", name="GET /cheap", context=context)
        session.request("GET", "/cpu?ms=0", name="GET /cpu", context=context)
    if len(events) != 2 or any(e["exception"] is not None for e in events):
        raise SystemExit(f"could not capture two good request events: {events}")
    return events


def _noop(**_: Any) -> None:
    return None


def time_listener(events: list[dict[str, Any]], records: int, batch: int,
                  recorder: Recorder | None) -> float:
    """Seconds to deliver ``records`` events (and flush every ``batch``) to one listener."""
    listener = recorder.on_request if recorder is not None else _noop
    pair = len(events)
    began = time.perf_counter()
    for start in range(0, records, batch):
        for index in range(start, min(start + batch, records)):
            listener(**events[index % pair])
        if recorder is not None:
            recorder.flush()
    return time.perf_counter() - began


def measure(records: int, batch: int, rounds: int) -> dict[str, Any]:
    """Per-record microseconds: no-op, on_request alone, on_request + flush (medians)."""
    events = real_events()
    noop, hook, full = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        warm = Recorder(Path(tmp) / "warm.parquet", PhaseClock(), "default")
        time_listener(events, batch, batch, warm)  # first flush imports pyarrow's pandas shim
        for index in range(rounds):
            noop.append(time_listener(events, records, batch, None) / records * 1e6)
            rec = Recorder(Path(tmp) / f"requests-{index}.parquet", PhaseClock(), "default")
            rec.flush = lambda: None  # type: ignore[method-assign] - hook alone
            hook.append(time_listener(events, records, batch, rec) / records * 1e6)
            rec = Recorder(Path(tmp) / f"requests-full-{index}.parquet", PhaseClock(), "default")
            full.append(time_listener(events, records, batch, rec) / records * 1e6)
            if rec.total != records:
                raise SystemExit(f"recorder kept {rec.total} of {records} records")
    return {"noop_us": median(noop), "hook_us": median(hook), "full_us": median(full),
            "noop_spread": spread(noop), "hook_spread": spread(hook), "full_spread": spread(full),
            "records": records, "batch": batch, "rounds": rounds}  # fmt: skip


def report(result: dict[str, Any]) -> list[str]:
    """Lines for the console and RESULTS.md."""
    added = result["full_us"] - result["noop_us"]
    return [
        f"recording path, {result['records']:,} real events, flushed every {result['batch']:,} "
        f"(median of {result['rounds']} rounds, µs per request):",
        f"  no-op listener            {result['noop_us']:8.2f}  (range {result['noop_spread']})",
        f"  Recorder.on_request       {result['hook_us']:8.2f}  (range {result['hook_spread']})",
        f"  on_request + flush        {result['full_us']:8.2f}  (range {result['full_spread']})",
        f"  recording cost vs no-op   {added:8.2f} µs per request",
    ]


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer records and rounds")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    records, rounds = (20_000, 3) if args.quick else (args.records, args.rounds)
    print("\n".join(report(measure(records, args.batch, rounds))))


if __name__ == "__main__":
    sys.exit(main())
