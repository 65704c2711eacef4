"""Decode what agents upload: the push API (``push.v1.PusherService/Push``) and legacy ``/ingest``.

Only CPU profiles are kept. Series of another profile type (``__name__`` other than
``process_cpu``, e.g. ``memory``) and legacy names with a non-CPU suffix (``app.inuse_space``)
are counted as skipped, not stored. Every problem raises :class:`InvalidProfile`.
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass
from urllib.parse import parse_qs

from harness.profiling.pprof import NS_PER_S, UNTAGGED, CpuProfile, decode_cpu
from harness.profiling.proto import (
    InvalidProfile,
    PushRequestView,
    gunzip_if_gzipped,
    parse_pprof,
    parse_push,
    parse_push_json,
)

__all__ = ["Upload", "decode_ingest", "decode_push"]

CPU_NAMES = frozenset({"", "process_cpu", "cpu"})
LEGACY_CPU_SUFFIXES = frozenset({"cpu", "itimer"})
LEGACY_OTHER_SUFFIXES = frozenset({
    "alloc_objects", "alloc_space", "inuse_objects", "inuse_space", "goroutines",
    "mutex_count", "mutex_duration", "block_count", "block_duration", "wall", "exceptions",
})  # fmt: skip


@dataclass
class Upload:
    """One profile from one agent: ``agent`` names the sender (its labels) for draining."""

    service: str
    agent: str
    profile: CpuProfile | None  # None: a profile type the harness does not store


def decode_push(body: bytes, content_type: str, encoding: str, limit: int) -> list[Upload]:
    """Decode a push request body (Connect unary: ``application/proto`` or JSON)."""
    if encoding not in ("", "identity", "gzip"):
        raise InvalidProfile(f"unsupported Content-Encoding {encoding!r} (use gzip)")
    if encoding == "gzip" and body[:2] != b"\x1f\x8b":
        raise InvalidProfile("Content-Encoding is gzip but the body is not gzip data")
    data = gunzip_if_gzipped(body, limit)
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("application/proto", "application/protobuf", "application/x-protobuf", ""):
        request = parse_push(data)
    elif media == "application/json":
        request = parse_push_json(data)
    else:
        raise InvalidProfile(f"unsupported Content-Type {content_type!r}")
    return _push_uploads(request, limit)


def _push_uploads(request: PushRequestView, limit: int) -> list[Upload]:
    uploads = []
    for series in request.series:
        labels = {pair.name: pair.value for pair in series.labels}
        service = labels.get("service_name") or "unknown"
        agent = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__")
        if labels.get("__name__", "") not in CPU_NAMES:
            uploads.append(Upload(service, agent, None))
            continue
        endpoint = labels.get("endpoint") or UNTAGGED
        for sample in series.samples:
            prof = parse_pprof(gunzip_if_gzipped(sample.raw_profile, limit))
            uploads.append(Upload(service, agent, decode_cpu(prof, endpoint)))
    return uploads


def decode_ingest(query: str, body: bytes, content_type: str, limit: int) -> Upload:
    """Decode a legacy ``/ingest?name=app.cpu{k=v}&format=…`` upload."""
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    service, suffix, labels = _parse_name(params.get("name", ""))
    agent = params["name"]
    if suffix in LEGACY_OTHER_SUFFIXES:
        return Upload(service, agent, None)
    rate = _int_param(params, "sampleRate", 100)
    endpoint = labels.get("endpoint") or UNTAGGED
    fmt = params.get("format", "folded")
    if content_type.lower().startswith("multipart/form-data"):
        profile = decode_cpu(parse_pprof(_multipart_profile(body, content_type, limit)),
                             endpoint, rate)  # fmt: skip
    elif fmt == "pprof":
        profile = decode_cpu(parse_pprof(gunzip_if_gzipped(body, limit)), endpoint, rate)
    elif fmt in ("folded", "lines", ""):
        profile = _folded(gunzip_if_gzipped(body, limit), endpoint, rate)
    else:
        raise InvalidProfile(f"unsupported format {fmt!r} (use folded or pprof)")
    start = _int_param(params, "from", 0)
    profile.start_ns = start * NS_PER_S
    profile.duration_ns = max(0, _int_param(params, "until", start) - start) * NS_PER_S
    return Upload(service, agent, profile)


def _parse_name(name: str) -> tuple[str, str, dict[str, str]]:
    """``app.cpu{k=v,k2=v2}`` → (``app``, ``cpu``, labels)."""
    base, _, rest = name.partition("{")
    if not base:
        raise InvalidProfile("query parameter 'name' is missing (expected app.cpu{k=v})")
    if rest and not rest.endswith("}"):
        raise InvalidProfile(f"name {name!r}: unclosed label set")
    labels: dict[str, str] = {}
    for pair in filter(None, rest[:-1].split(",")):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidProfile(f"name {name!r}: label {pair!r} is not key=value")
        labels[key.strip()] = value.strip()
    app, _, suffix = base.rpartition(".")
    if suffix in LEGACY_CPU_SUFFIXES or suffix in LEGACY_OTHER_SUFFIXES:
        return app or base, suffix, labels
    return base, "cpu", labels


def _int_param(params: dict[str, str], key: str, default: int) -> int:
    raw = params.get(key, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidProfile(f"query parameter {key}={raw!r} is not an integer") from exc
    if value < 0:
        raise InvalidProfile(f"query parameter {key}={raw!r} is negative")
    return value


def _folded(data: bytes, endpoint: str, rate: int) -> CpuProfile:
    """Folded lines ``a;b;c 12`` (values are sample counts at ``rate`` Hz)."""
    if rate <= 0:
        raise InvalidProfile("sampleRate must be positive for folded profiles")
    profile = CpuProfile(period_ns=NS_PER_S // rate)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidProfile(f"folded profile is not UTF-8 text ({exc})") from exc
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            raise InvalidProfile(f"folded line {number}: expected 'frame;frame count'")
        frames = tuple((name, "", 0) for name in stack.split(";"))
        profile.add(endpoint, frames, int(count) * NS_PER_S // rate)
    return profile


def _multipart_profile(body: bytes, content_type: str, limit: int) -> bytes:
    """The ``profile`` part of a multipart upload (``prev_profile`` is not needed for CPU)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise InvalidProfile("multipart body without a boundary or parts")
    for part in msg.iter_parts():
        if part.get_param("name", header="content-disposition") == "profile":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return gunzip_if_gzipped(payload, limit)
    raise InvalidProfile("multipart upload has no 'profile' part")
