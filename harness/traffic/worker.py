"""A load-generator worker process on Locust's worker runner.

Local workers (started by the run) write their request records as their own Parquet shards
next to the master's; remote workers (``harness worker --master HOST:PORT SCENARIO``) ship
their batches to the master in Locust worker messages. Either way each record is written once:
a batch leaves the worker's buffer when it is written or sent.
The master steers the worker with messages: ``harness_setup`` (host, clock start, share of the
open-model rate, phase, multiplier), ``harness_phase``, ``harness_share``,
``harness_multiplier`` and ``harness_flush`` (answered by ``harness_flushed``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from locust.env import Environment

from harness.artifacts import REQUESTS
from harness.errors import InputError
from harness.traffic.design import MixDesign
from harness.traffic.heap import settle_heap
from harness.traffic.recorder import PhaseClock, Recorder
from harness.traffic.schedule import Schedule
from harness.traffic.users import Dispatcher, build_users

if TYPE_CHECKING:
    from harness.scenario import Scenario

FLUSH_S = 1.0


class WorkerState:
    """What the master told this worker."""

    def __init__(self) -> None:
        self.share = 1.0
        self.t0: float | None = None


def parse_master(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--master {address!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def run_worker(scenario: Scenario, master: str, run_dir: Path | None, name: str,
               variant: str) -> int:
    """Serve as a worker until the master quits; returns the number of records kept."""
    host, port = parse_master(master)
    clock, state = PhaseClock(), WorkerState()
    schedule = Schedule(scenario.traffic)
    design = MixDesign.of(scenario.traffic, [r.weight for r in scenario.requests])
    dispatcher = None
    if schedule.open and scenario.locustfile is None:
        dispatcher = Dispatcher(lambda t: (schedule.at(t).rate or 0.0) * state.share,
                                scenario.traffic.arrival, seed=hash(name) & 0xFFFF,
                                design=design)
    users = build_users(scenario, "http://127.0.0.1", dispatcher, seed=hash(name) & 0xFFFF,
                        design=design)
    env = Environment(user_classes=users, host="http://127.0.0.1",
                      stop_timeout=scenario.traffic.timeout + 1.0)
    runner = env.create_worker_runner(host, port)
    ship = run_dir is None
    recorder = Recorder((run_dir or Path(".")) / REQUESTS, clock, variant, prefix=f"{name}-",
                        sink=(lambda rows: runner.send_message("harness_records", {"rows": rows}))
                        if ship else None)
    env.events.request.add_listener(recorder.on_request)  # type: ignore[no-untyped-call]

    def on_setup(msg: Any, **_: Any) -> None:
        data = msg.data
        for cls in users:
            cls.host = data["host"]
        env.host = data["host"]
        clock.current = data["phase"]
        state.share = data["share"]
        schedule.multiplier = data["multiplier"]
        if data.get("t0") is not None:
            on_start(msg)

    def on_start(msg: Any, **_: Any) -> None:
        if state.t0 is None and dispatcher is not None:
            state.t0 = msg.data["t0"]
            dispatcher.start(state.t0)

    def on_flush(msg: Any, **_: Any) -> None:
        if dispatcher is not None:
            dispatcher.stop()
        recorder.flush()
        runner.send_message("harness_flushed", {"worker": name, "records": recorder.total})

    handlers = {
        "harness_setup": on_setup, "harness_start": on_start, "harness_flush": on_flush,
        "harness_phase": lambda msg, **_: setattr(clock, "current", msg.data["value"]),
        "harness_share": lambda msg, **_: setattr(state, "share", msg.data["value"]),
        "harness_multiplier": lambda msg, **_: setattr(schedule, "multiplier", msg.data["value"]),
    }
    for kind, handler in handlers.items():
        runner.register_message(kind, handler)
    flusher = gevent.spawn(_flush_loop, recorder)
    settle_heap()
    runner.greenlet.join()
    flusher.kill()
    if dispatcher is not None:
        dispatcher.stop()
    if not ship:
        recorder.flush()  # the master compacts every shard once all workers are done
    return recorder.total


def _flush_loop(recorder: Recorder) -> None:
    while True:
        gevent.sleep(FLUSH_S)
        recorder.flush()
