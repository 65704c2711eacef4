"""Toxics of the embedded fault proxy: their JSON form (Toxiproxy's), validation and pure logic.

A toxic is ``{name, type, stream, toxicity, attributes}``. ``stream`` is ``upstream`` (client →
server bytes) or ``downstream`` (server → client); ``toxicity`` is the chance that the toxic
applies to a connection, drawn once per connection and toxic as Toxiproxy does. The link
(:mod:`harness.faults.proxy_link`) asks :func:`plan_chunk` what to do with each chunk of bytes.

Attributes (all non-negative integers unless noted; unknown attributes are refused):

=============  ====================================================================
latency        ``latency``, ``jitter`` ms: each chunk is delayed latency ± jitter
bandwidth      ``rate`` KB/s (1 KB = 1000 bytes; 0 = unlimited)
slow_close     ``delay`` ms before the close is passed on
timeout        ``timeout`` ms: data is dropped, the connection closed after timeout
               (0 = data dropped until the toxic is removed)
reset_peer     ``timeout`` ms: on data, wait timeout then reset (TCP RST) the connection
slicer         ``average_size``, ``size_variation`` bytes, ``delay`` µs between slices
limit_data     ``bytes``: the connection is closed once this many bytes have passed
http_error     ``status`` (400..599), ``rate`` (0..1 per request), ``first_n`` (fail only
               among the first N requests, 0 = no limit), ``body`` (str): HTTP/1.x requests
               are answered by the proxy without reaching the upstream (stream downstream)
=============  ====================================================================
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import InputError

Stream = Literal["upstream", "downstream"]
NonNegInt = Annotated[int, Field(ge=0)]


class ApiProblem(InputError):
    """A request to the proxy API that cannot be served; becomes ``{"error", "status"}``."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{status}: {message}")


class _Attributes(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LatencyAttributes(_Attributes):
    latency: NonNegInt = 0
    jitter: NonNegInt = 0


class BandwidthAttributes(_Attributes):
    rate: NonNegInt = 0


class SlowCloseAttributes(_Attributes):
    delay: NonNegInt = 0


class TimeoutAttributes(_Attributes):
    timeout: NonNegInt = 0


class ResetPeerAttributes(_Attributes):
    timeout: NonNegInt = 0


class SlicerAttributes(_Attributes):
    average_size: NonNegInt = 0
    size_variation: NonNegInt = 0
    delay: NonNegInt = 0

    @model_validator(mode="after")
    def _sizes(self) -> SlicerAttributes:
        if self.average_size < 1:
            raise ValueError("average_size must be at least 1")
        if self.size_variation >= self.average_size:
            raise ValueError("size_variation must be smaller than average_size")
        return self


class LimitDataAttributes(_Attributes):
    bytes: NonNegInt = 0


class HttpErrorAttributes(_Attributes):
    status: Annotated[int, Field(ge=400, le=599)] = 503
    rate: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    first_n: NonNegInt = 0
    body: str = ""


Attributes = (
    LatencyAttributes | BandwidthAttributes | SlowCloseAttributes | TimeoutAttributes
    | ResetPeerAttributes | SlicerAttributes | LimitDataAttributes | HttpErrorAttributes
)
ATTRIBUTE_MODELS: dict[str, type[_Attributes]] = {
    "latency": LatencyAttributes,
    "bandwidth": BandwidthAttributes,
    "slow_close": SlowCloseAttributes,
    "timeout": TimeoutAttributes,
    "reset_peer": ResetPeerAttributes,
    "slicer": SlicerAttributes,
    "limit_data": LimitDataAttributes,
    "http_error": HttpErrorAttributes,
}
_uids = itertools.count(1)
_M = TypeVar("_M", bound=BaseModel)


@dataclass(eq=False)
class Toxic:
    """One toxic of one proxy. A new ``uid`` (so a new toxicity draw) on every update."""

    name: str
    type: str
    stream: Stream
    toxicity: float
    attributes: Attributes
    uid: int = field(default_factory=lambda: next(_uids))
    requests_seen: int = 0  # http_error: requests this toxic has judged (for first_n)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "stream": self.stream,
                "toxicity": self.toxicity, "attributes": self.attributes.model_dump()}


class _ToxicBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = ""
    type: str
    stream: Stream = "downstream"
    toxicity: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    attributes: dict[str, Any] = Field(default_factory=dict)


class _ToxicUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    toxicity: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


def parse_toxic(body: dict[str, Any]) -> Toxic:
    """A new toxic from a ``POST /proxies/{name}/toxics`` body, or :class:`ApiProblem` 400."""
    spec = validate_body(_ToxicBody, body)
    model = ATTRIBUTE_MODELS.get(spec.type)
    if model is None:
        known = ", ".join(sorted(ATTRIBUTE_MODELS))
        raise ApiProblem(400, f"invalid toxic type {spec.type!r} (known: {known})")
    if spec.type == "http_error" and spec.stream != "downstream":
        raise ApiProblem(400, "http_error answers the client, so its stream must be downstream")
    attributes = validate_body(model, spec.attributes, "attributes.")
    name = spec.name or f"{spec.type}_{spec.stream}"
    return Toxic(name, spec.type, spec.stream, spec.toxicity, cast(Attributes, attributes))


def updated_toxic(toxic: Toxic, body: dict[str, Any]) -> Toxic:
    """``toxic`` with the attributes and toxicity given in ``body`` (others kept), as a new
    toxic; name, type and stream cannot change."""
    change = validate_body(_ToxicUpdate, body)
    merged = toxic.attributes.model_dump() | change.attributes
    attributes = validate_body(ATTRIBUTE_MODELS[toxic.type], merged, "attributes.")
    toxicity = toxic.toxicity if change.toxicity is None else change.toxicity
    return Toxic(toxic.name, toxic.type, toxic.stream, toxicity, cast(Attributes, attributes))


def validate_body(model: type[_M], data: object, prefix: str = "") -> _M:
    """``model`` from JSON data, or :class:`ApiProblem` 400 naming every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{prefix}{'.'.join(map(str, err['loc'])) or '(body)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ApiProblem(400, f"bad request body: {problems}") from exc


def applies(toxicity: float, rng: random.Random) -> bool:
    """Whether a toxic of this toxicity applies to a new connection (1 = always, 0 = never)."""
    return rng.random() < toxicity


def latency_delay_s(attrs: LatencyAttributes, rng: random.Random) -> float:
    """latency ± jitter, in seconds, never negative."""
    jitter = rng.uniform(-attrs.jitter, attrs.jitter) if attrs.jitter else 0.0
    return max(0.0, attrs.latency + jitter) / 1000.0


def slice_sizes(total: int, attrs: SlicerAttributes, rng: random.Random) -> list[int]:
    """Sizes that add up to ``total``: each average_size ± size_variation, the last one
    whatever is left (it may be smaller)."""
    low = attrs.average_size - attrs.size_variation
    high = attrs.average_size + attrs.size_variation
    sizes: list[int] = []
    left = total
    while left > high:
        size = rng.randint(low, high)
        sizes.append(size)
        left -= size
    if left:
        sizes.append(left)
    return sizes


def bandwidth_pieces(size: int, rate_kb_s: int) -> list[int]:
    """Pieces of at most 100 ms worth of bytes at ``rate`` KB/s, so slow rates trickle."""
    step = max(1, rate_kb_s * 100)
    return [min(step, size - start) for start in range(0, size, step)]


def transfer_time_s(size: int, rate_kb_s: int) -> float:
    """Seconds that ``size`` bytes take at ``rate`` KB/s."""
    return size / (rate_kb_s * 1000.0) if rate_kb_s > 0 else 0.0


def should_fail(toxic: Toxic, attrs: HttpErrorAttributes, rng: random.Random) -> bool:
    """Judge one request: among the first ``first_n`` (if set), fail with chance ``rate``."""
    toxic.requests_seen += 1
    if attrs.first_n and toxic.requests_seen > attrs.first_n:
        return False
    return rng.random() < attrs.rate


@dataclass
class ChunkPlan:
    """What a link does with one chunk, from the toxics that apply to it in chain order."""

    data: bytes
    delay_s: float = 0.0  # latency, counted from the chunk's arrival
    drop: bool = False  # timeout: the data never arrives
    reset_after_s: float | None = None  # reset_peer: reset the connection after this pause
    close_after: bool = False  # limit_data: close the connection once ``data`` is sent
    slicer: SlicerAttributes | None = None
    bandwidth: tuple[int, int] | None = None  # (toxic uid, rate KB/s): paced per connection


def plan_chunk(toxics: Iterable[Toxic], data: bytes, sent: dict[int, int],
               rng: random.Random) -> ChunkPlan:
    """Plan one chunk through ``toxics`` (those applying to this connection and stream).

    ``sent`` holds bytes already passed per limit_data toxic uid; it is updated here.
    """
    plan = ChunkPlan(data)
    for toxic in toxics:
        attrs = toxic.attributes
        if isinstance(attrs, TimeoutAttributes):
            plan.drop = True
            return plan
        if isinstance(attrs, ResetPeerAttributes):
            plan.reset_after_s = attrs.timeout / 1000.0
            return plan
        if isinstance(attrs, LatencyAttributes):
            plan.delay_s += latency_delay_s(attrs, rng)
        elif isinstance(attrs, LimitDataAttributes):
            passed = sent.get(toxic.uid, 0)
            plan.data = plan.data[: max(0, attrs.bytes - passed)]
            sent[toxic.uid] = passed + len(plan.data)
            plan.close_after = plan.close_after or sent[toxic.uid] >= attrs.bytes
        elif isinstance(attrs, SlicerAttributes) and plan.slicer is None:
            plan.slicer = attrs
        elif isinstance(attrs, BandwidthAttributes) and attrs.rate and plan.bandwidth is None:
            plan.bandwidth = (toxic.uid, attrs.rate)
    return plan
