"""One call of a scenario's users: pick an endpoint by weight, render it, send it.

Kept apart from the Locust user classes (``users.py``) so it is plain Python: the hot path of
the load generator, testable without importing Locust.
"""

from __future__ import annotations

import bisect
import itertools
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.traffic.design import MixDesign

if TYPE_CHECKING:
    from harness.scenario import RequestSpec, Scenario

Call = Callable[[Any, "float | None"], None]  # (Locust user, lateness in ms or None)


def make_call(scenario: Scenario, rng: random.Random, design: MixDesign | None = None) -> Call:
    """The function a user runs per request (``user.client`` is Locust's FastHttpSession);
    endpoints are picked by the weights ``design`` has in force (default: the scenario's)."""
    specs = list(scenario.requests)
    if design is None:
        design = MixDesign.of(scenario.traffic, [s.weight for s in specs])
    pick = _picker(specs, rng, design)
    lifetime = scenario.traffic.connection_lifetime
    # The endpoint's name reaches the target only when the run profiles it (the targets get
    # a profiler only then, see Run._start_profiling): an extra header costs the load
    # generator ~3 µs per request (geventhttpclient checks and folds every header).
    tag = scenario.profiling.enabled
    # Requests without params or tenant are the same every time: built once, not per call.
    fixed = {id(spec): _parts(spec, rng, tag) for spec in scenario.requests
             if not spec.params and spec.tenant is None}
    # With OTel on, every call starts a trace: a W3C traceparent, its trace id kept in the
    # record (only then: the header costs the load generator per request, see docs/otel.md).
    # Ids come from their own generator, seeded from os.urandom: unique across runs and load
    # generators, and the scenario's seeded choices (endpoints, params) stay as without OTel.
    ids = random.Random(os.urandom(32)) if scenario.otel.enabled else None

    def call(user: Any, late_ms: float | None) -> None:
        spec = pick()
        parts = fixed.get(id(spec)) or _parts(spec, rng, tag)
        headers = parts.headers
        if lifetime > 0 and _connection_expired(user, lifetime):
            headers = {**headers, "Connection": "close"}  # the next request opens a new one
        ctx = {"tenant": parts.tenant, "bytes_in": parts.bytes_in, "late_ms": late_ms}
        if ids is not None:
            headers = _traced(headers, ctx, ids)
        user.client.request(parts.method, parts.path, name=spec.name, data=parts.body,
                            headers=headers, context=ctx)

    return call


def _picker(specs: list[RequestSpec], rng: random.Random,
            design: MixDesign) -> Callable[[], RequestSpec]:
    if len(specs) == 1:
        return lambda: specs[0]
    if design.mode == "weighted":  # fixed weights: no clock read per call
        cum = list(itertools.accumulate(s.weight for s in specs))
        total = cum[-1]
        return lambda: specs[bisect.bisect_right(cum, rng.random() * total)]

    def pick() -> RequestSpec:
        cum = design.cumulative()
        return specs[bisect.bisect_right(cum, rng.random() * cum[-1])]

    return pick


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


def _parts(spec: RequestSpec, rng: random.Random, tag: bool) -> _Parts:
    req = spec.render(rng)
    headers = dict(req.headers)
    if tag:
        headers["X-Harness-Endpoint"] = spec.name  # profiles are tagged with the endpoint name
    if req.content_type:
        headers["Content-Type"] = req.content_type
    if req.tenant:
        headers["X-Tenant"] = req.tenant
    return _Parts(req.method, req.path, req.body_bytes, headers, req.tenant,
                  len(req.body_bytes or b""))


def _traced(headers: dict[str, str], ctx: dict[str, Any], rng: random.Random) -> dict[str, str]:
    """A copy of ``headers`` with a new sampled ``traceparent``; its trace id into ``ctx``."""
    ids = f"{rng.getrandbits(192) | 1:048x}"  # 32 hex trace id + 16 hex span id, never zero
    ctx["trace_id"] = ids[:32]
    return {**headers, "traceparent": f"00-{ids[:32]}-{ids[32:]}-01"}


def _connection_expired(user: Any, lifetime: float) -> bool:
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
