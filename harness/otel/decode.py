"""OTLP/HTTP trace payloads (protobuf or JSON, maybe gzipped) → the span facts the harness reads.

Only what the per-trace aggregation needs is kept of a span: its trace id (lower-case hex),
kind, start and end, whether its status is ERROR, the ``service.name`` of its resource and the
attributes in :data:`READ_KEYS`. A span whose trace id is not 16 bytes (or is all zeros) is
rejected, counted, and named in the export response's ``partial_success``.

OTLP/JSON differs from the protobuf JSON mapping in two ways handled here: trace and span ids
are hex strings (not base64; base64 of 16 bytes is accepted too, as some exporters send it),
and enum values (``kind``, ``status.code``) may be integers or their names. 64-bit integers
may be JSON strings or numbers.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from harness.errors import InputError
from harness.util import InflateError, gunzip_bounded

__all__ = [
    "READ_KEYS",
    "Decoded",
    "InvalidOtlp",
    "OtlpTooLarge",
    "Span",
    "decode_traces",
    "inflate",
]

KIND_SERVER = 2
KIND_CLIENT = 3
STATUS_ERROR = 2
_KINDS = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
          "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}  # fmt: skip
_STATUS = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_ZERO_ID = "0" * 32
_HEX = frozenset("0123456789abcdef")

# The span attributes the aggregation reads (old and current semantic-convention names).
READ_KEYS = frozenset({
    "db.system", "db.system.name", "db.operation", "db.operation.name", "db.statement",
    "db.query.text", "http.method", "http.request.method", "server.address", "server.port",
    "net.peer.name", "net.peer.port", "http.url", "url.full", "http.host",
})  # fmt: skip

Attr = str | int | float | bool


class InvalidOtlp(InputError):
    """An OTLP payload the receiver cannot read (bad protobuf, JSON, gzip or field)."""


class OtlpTooLarge(InvalidOtlp):
    """A body, or what it inflates to, is larger than the receiver accepts."""


@dataclass(slots=True)
class Span:
    """The facts of one span that the harness reads."""

    trace_id: str  # 32 lower-case hex digits
    kind: int  # OTLP SpanKind number (2 SERVER, 3 CLIENT)
    start_ns: int
    end_ns: int
    error: bool  # status code ERROR
    service: str | None  # resource attribute service.name
    attrs: dict[str, Attr] = field(default_factory=dict)  # only READ_KEYS


@dataclass(slots=True)
class Decoded:
    """The spans of one export request, and the spans rejected from it (with why)."""

    spans: list[Span]
    rejected: int = 0
    reason: str | None = None


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """``body`` decoded per ``Content-Encoding`` (identity or gzip), at most ``limit`` bytes."""
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise InvalidOtlp(f"unsupported Content-Encoding {encoding!r} (identity or gzip)")
    try:
        out, _ = gunzip_bounded(body, limit, noun="body")
    except InflateError as exc:
        raise (OtlpTooLarge if exc.too_large else InvalidOtlp)(str(exc)) from exc
    return out


def decode_traces(body: bytes, json_body: bool) -> Decoded:
    """Spans of an ``ExportTraceServiceRequest`` (protobuf, or OTLP/JSON when ``json_body``)."""
    return _from_json(body) if json_body else _from_protobuf(body)


# -- protobuf ---------------------------------------------------------------------------------


def _from_protobuf(body: bytes) -> Decoded:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise InvalidOtlp(f"not an OTLP ExportTraceServiceRequest protobuf ({exc})") from exc
    out = Decoded([])
    for resource_spans in request.resource_spans:
        service = _pb_service(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                trace_id = span.trace_id.hex()
                if len(trace_id) != 32 or trace_id == _ZERO_ID:
                    _reject(out, f"a span has an invalid trace id {trace_id!r}")
                    continue
                attrs = {a.key: _pb_value(a.value) for a in span.attributes if a.key in READ_KEYS}
                error = span.status.code == STATUS_ERROR
                out.spans.append(Span(trace_id, span.kind, span.start_time_unix_nano,
                                      span.end_time_unix_nano, error, service, attrs))
    return out


def _pb_service(attributes: Any) -> str | None:
    for attribute in attributes:
        if attribute.key == "service.name":
            value = _pb_value(attribute.value)
            return str(value)
    return None


def _pb_value(value: Any) -> Attr:
    which = value.WhichOneof("value")
    if which in ("string_value", "int_value", "bool_value", "double_value"):
        result: Attr = getattr(value, which)
        return result
    return ""  # arrays, maps and bytes: not read


def _reject(out: Decoded, reason: str) -> None:
    out.rejected += 1
    out.reason = out.reason or reason


# -- OTLP/JSON --------------------------------------------------------------------------------


def _from_json(body: bytes) -> Decoded:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidOtlp(f"not OTLP/JSON: {exc}") from exc
    out = Decoded([])
    for i, resource_spans in enumerate(_list(_obj(doc, "$"), "resourceSpans", "$")):
        where = f"resourceSpans[{i}]"
        rs = _obj(resource_spans, where)
        resource = _obj(rs.get("resource") or {}, where + ".resource")
        service = _json_attrs(resource, where + ".resource", frozenset({"service.name"}))
        name = service.get("service.name")
        for j, scope_spans in enumerate(_list(rs, "scopeSpans", where)):
            swhere = f"{where}.scopeSpans[{j}]"
            for k, span in enumerate(_list(_obj(scope_spans, swhere), "spans", swhere)):
                _json_span(out, _obj(span, f"{swhere}.spans[{k}]"), f"{swhere}.spans[{k}]",
                           None if name is None else str(name))  # fmt: skip
    return out


def _json_span(out: Decoded, span: dict[str, Any], where: str, service: str | None) -> None:
    trace_id = _json_id(span.get("traceId"))
    if trace_id is None:
        _reject(out, f"{where}.traceId: not 32 hex digits ({str(span.get('traceId'))[:40]!r})")
        return
    status = _obj(span.get("status") or {}, where + ".status")
    kind = _enum(span.get("kind", 0), _KINDS, where + ".kind")
    code = _enum(status.get("code", 0), _STATUS, where + ".status.code")
    out.spans.append(Span(trace_id, kind, _int(span.get("startTimeUnixNano", 0), where),
                          _int(span.get("endTimeUnixNano", 0), where), code == STATUS_ERROR,
                          service, _json_attrs(span, where, READ_KEYS)))  # fmt: skip


def _json_id(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.lower()
    if len(text) == 32 and _HEX.issuperset(text):
        return None if text == _ZERO_ID else text
    if len(value) == 24:  # base64 of 16 bytes (the protobuf JSON mapping), seen in the wild
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        return raw.hex() if len(raw) == 16 and any(raw) else None
    return None


def _json_attrs(holder: dict[str, Any], where: str, keys: frozenset[str]) -> dict[str, Attr]:
    out: dict[str, Attr] = {}
    for i, item in enumerate(_list(holder, "attributes", where)):
        attr = _obj(item, f"{where}.attributes[{i}]")
        key = attr.get("key")
        if key in keys:
            out[str(key)] = _json_value(attr.get("value"), f"{where}.attributes[{i}]")
    return out


def _json_value(value: object, where: str) -> Attr:
    if not isinstance(value, dict):
        return ""
    if "stringValue" in value:
        return str(value["stringValue"])
    if "intValue" in value:
        return _int(value["intValue"], where)
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError) as exc:
            raise InvalidOtlp(f"{where}: doubleValue is not a number") from exc
    return ""


def _enum(value: object, names: dict[str, int], where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in names:
        return names[value]
    raise InvalidOtlp(f"{where}: {str(value)[:40]!r} is not one of {', '.join(names)}")


def _int(value: object, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise InvalidOtlp(f"{where}: {str(value)[:40]!r} is not an integer")


def _obj(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidOtlp(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _list(holder: dict[str, Any], key: str, where: str) -> list[Any]:
    value = holder.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidOtlp(f"{where}.{key}: expected a JSON array, got {type(value).__name__}")
    return value
