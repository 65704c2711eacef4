"""Locust user classes built from a scenario's ``requests`` list (or taken from a locustfile).

Closed model: each user picks an endpoint by weight, calls it, thinks, repeats.
Open model: a pool of users waits for arrival tokens from the :class:`Dispatcher`; each token
carries its scheduled time, so lateness is recorded and the asked rate holds while the pool
has idle users (k6's constant-arrival-rate with ``maxVUs``).
"""

from __future__ import annotations

import bisect
import itertools
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from gevent.queue import Empty, Queue
from locust import FastHttpUser, User, between, constant, task

from harness.errors import ScenarioInvalid

if TYPE_CHECKING:
    from harness.scenario import RequestSpec, Scenario


IDLE_POLL_S = 1.0


class Dispatcher:
    """Releases arrival tokens at the asked rate into a queue the open-model users drain."""

    def __init__(self, rate_at: Any, arrival: str, seed: int) -> None:
        self.queue: Queue[float] = Queue()
        self.rate_at = rate_at  # Callable[[float], float], seconds since traffic start
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


def _picker(specs: list[RequestSpec], rng: random.Random) -> Any:
    cum = list(itertools.accumulate(s.weight for s in specs))
    total = cum[-1]

    def pick() -> RequestSpec:
        return specs[bisect.bisect_right(cum, rng.random() * total)] if len(specs) > 1 else specs[0]

    return pick


def build_users(scenario: Scenario, host: str, dispatcher: Dispatcher | None,
                seed: int) -> list[type[User]]:
    """One FastHttpUser subclass for the scenario's request list."""
    if scenario.locustfile is not None:
        return _from_locustfile(Path(scenario.locustfile), host)
    rng = random.Random(seed)
    pick = _picker(list(scenario.requests), rng)
    traffic = scenario.traffic

    lifetime = traffic.connection_lifetime
    # Requests without params or tenant are the same every time: built once, not per call.
    fixed = {id(spec): _parts(spec, rng) for spec in scenario.requests
             if not spec.params and spec.tenant is None}

    def call(user: FastHttpUser, late_ms: float | None) -> None:
        spec = pick()
        parts = fixed.get(id(spec)) or _parts(spec, rng)
        headers = parts.headers
        if lifetime > 0 and _connection_expired(user, lifetime):
            headers = {**headers, "Connection": "close"}  # the next request opens a new one
        ctx = {"tenant": parts.tenant, "bytes_in": parts.bytes_in, "late_ms": late_ms}
        user.client.request(parts.method, parts.path, name=spec.name,
                            data=parts.body,  # type: ignore[arg-type] # bytes work; stub says str
                            headers=headers, context=ctx)

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


@dataclass(frozen=True, slots=True)
class _Parts:
    """What one call sends; Locust copies ``headers`` before adding its own, so one dict may
    serve every call of a fixed request."""

    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    tenant: str | None
    bytes_in: int


def _parts(spec: RequestSpec, rng: random.Random) -> _Parts:
    req = spec.render(rng)
    headers = dict(req.headers)
    headers["X-Harness-Endpoint"] = spec.name  # lets profiles be tagged by endpoint name
    if req.content_type:
        headers["Content-Type"] = req.content_type
    if req.tenant:
        headers["X-Tenant"] = req.tenant
    return _Parts(req.method, req.path, req.body_bytes, headers, req.tenant,
                  len(req.body_bytes or b""))


def _connection_expired(user: FastHttpUser, lifetime: float) -> bool:
    """True once per ``lifetime`` seconds of a user's connection (it is then closed)."""
    now = time.monotonic()
    opened = getattr(user, "_harness_opened", None)
    if opened is None:
        setattr(user, "_harness_opened", now)  # noqa: B010 - per-user connection age
        return False
    if now - opened < lifetime:
        return False
    setattr(user, "_harness_opened", None)  # noqa: B010
    return True


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
