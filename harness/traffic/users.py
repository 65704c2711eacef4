"""Locust user classes built from a scenario's ``requests`` list (or taken from a locustfile).

Closed model: each user picks an endpoint by weight, calls it, thinks, repeats.
Open model: a pool of users waits for arrival tokens from the :class:`Dispatcher`; each token
carries its scheduled time, so lateness is recorded and the asked rate holds while the pool
has idle users (k6's constant-arrival-rate with ``maxVUs``).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from gevent.queue import Empty, Queue
from locust import FastHttpUser, User, between, constant, task

from harness.errors import ScenarioInvalid
from harness.traffic.calls import make_call
from harness.traffic.design import MixDesign
from harness.traffic.tracing import traced_user

if TYPE_CHECKING:
    from harness.scenario import Scenario


IDLE_POLL_S = 1.0


class Dispatcher:
    """Releases arrival tokens at the asked rate into a queue the open-model users drain."""

    def __init__(self, rate_at: Any, arrival: str, seed: int,
                 design: MixDesign | None = None) -> None:
        self.queue: Queue[float] = Queue()
        self.rate_at = rate_at  # Callable[[float], float], seconds since traffic start
        self.design = design  # a designed mix scales the rate per window
        self.poisson = arrival == "poisson"
        self.rng = random.Random(seed)
        self.idle = 0
        self.arrivals = 0
        self.dropped = 0
        self._greenlet: gevent.Greenlet[Any, Any] | None = None

    def start(self, t0: float) -> None:
        self._greenlet = gevent.spawn(self._run, t0)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=2)

    def _gap(self, rate: float) -> float:
        if rate <= 0:
            return 0.05
        return self.rng.expovariate(rate) if self.poisson else 1.0 / rate

    def _run(self, t0: float) -> None:
        due = t0
        while True:
            now = time.time()
            while due <= now:  # release every arrival that is due (batched at high rates)
                rate = self.rate_at(due - t0)
                if self.design is not None:
                    rate *= self.design.rate_factor(due)
                if rate > 0:
                    self._release(due)
                due += self._gap(rate)
            gevent.sleep(max(0.0, due - time.time()))

    def _release(self, scheduled: float) -> None:
        self.arrivals += 1
        if self.idle <= self.queue.qsize():
            self.dropped += 1  # no free user: the arrival is lost, as in k6
            return
        self.queue.put(scheduled)


def build_users(scenario: Scenario, host: str, dispatcher: Dispatcher | None,
                seed: int, design: MixDesign | None = None) -> list[type[User]]:
    """One FastHttpUser subclass for the scenario's request list."""
    if scenario.locustfile is not None:
        users = _from_locustfile(Path(scenario.locustfile), host)
        if scenario.otel.enabled:  # a traceparent per request, as for the scenario's own
            ids = random.Random(os.urandom(32))  # unique across runs and load generators
            users = [traced_user(cls, ids) for cls in users]
        return users
    call = make_call(scenario, random.Random(seed), design)
    traffic = scenario.traffic
    attrs: dict[str, Any] = {"host": host, "network_timeout": traffic.timeout,
                             "connection_timeout": traffic.timeout}
    if dispatcher is None:
        low, high = traffic.think_time
        attrs["wait_time"] = constant(low) if low == high else between(low, high)
        attrs["call"] = task(lambda self: call(self, None))
        return [type("ScenarioUser", (FastHttpUser,), attrs)]

    def open_call(self: FastHttpUser) -> None:
        # Wait for an arrival with a timeout, so a stopping run finds every idle user between
        # tasks within a second and never kills one that has a request in flight.
        dispatcher.idle += 1
        try:
            scheduled = dispatcher.queue.get(timeout=IDLE_POLL_S)
        except Empty:
            return
        finally:
            dispatcher.idle -= 1
        call(self, max(0.0, (time.time() - scheduled) * 1000.0))

    attrs["wait_time"] = constant(0)
    attrs["call"] = task(open_call)
    return [type("OpenModelUser", (FastHttpUser,), attrs)]


def _from_locustfile(path: Path, host: str) -> list[type[User]]:
    from locust.util.load_locustfile import load_locustfile

    try:
        user_classes, _shapes = load_locustfile(str(path))
    except (Exception, SystemExit) as exc:  # a user's file can raise anything at import
        raise ScenarioInvalid(str(path), [f"locustfile: cannot be loaded: {exc}"]) from exc
    users = [cls for cls in user_classes.values() if not getattr(cls, "abstract", False)]
    if not users:
        raise ScenarioInvalid(str(path), ["locustfile: defines no User class"])
    for cls in users:
        cls.host = host  # traffic goes to the stack's entry service only
    return users
