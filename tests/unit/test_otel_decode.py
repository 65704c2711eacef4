"""OTLP trace payloads → span facts: protobuf (the SDK's own bytes), OTLP/JSON with hex ids and
enum names or numbers, gzip, and garbage → one clear InvalidOtlp."""

from __future__ import annotations

import gzip
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from harness.otel.decode import (
    KIND_CLIENT,
    KIND_SERVER,
    InvalidOtlp,
    OtlpTooLarge,
    decode_traces,
    inflate,
)

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def _pb_request(trace_id: bytes = bytes.fromhex(TRACE)) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="shop")))
    spans = resource_spans.scope_spans.add().spans
    server = spans.add(trace_id=trace_id, span_id=bytes.fromhex(SPAN), kind=KIND_SERVER,
                       start_time_unix_nano=1_000_000, end_time_unix_nano=3_500_000)
    server.attributes.append(KeyValue(key="http.method", value=AnyValue(string_value="GET")))
    db = spans.add(trace_id=trace_id, span_id=b"\x01" * 8, kind=KIND_CLIENT)
    db.attributes.extend([
        KeyValue(key="db.system", value=AnyValue(string_value="postgresql")),
        KeyValue(key="db.statement", value=AnyValue(string_value="SELECT 1")),
        KeyValue(key="ignored.attribute", value=AnyValue(int_value=5)),
        KeyValue(key="server.port", value=AnyValue(int_value=5432)),
    ])
    db.status.code = 2
    return request.SerializeToString()


def test_protobuf_spans_keep_ids_kind_times_status_service_and_read_attributes() -> None:
    decoded = decode_traces(_pb_request(), json_body=False)
    assert decoded.rejected == 0 and len(decoded.spans) == 2
    server, db = decoded.spans
    assert server.trace_id == TRACE and server.kind == KIND_SERVER and server.service == "shop"
    assert (server.start_ns, server.end_ns, server.error) == (1_000_000, 3_500_000, False)
    assert db.attrs == {"db.system": "postgresql", "db.statement": "SELECT 1",
                        "server.port": 5432}  # fmt: skip
    assert db.error is True


def test_an_all_zero_or_short_trace_id_is_rejected_and_counted() -> None:
    decoded = decode_traces(_pb_request(b"\x00" * 16), json_body=False)
    assert decoded.spans == [] and decoded.rejected == 2
    assert decoded.reason is not None and "invalid trace id" in decoded.reason


def _json_doc(trace_id: str = TRACE, kind: object = "SPAN_KIND_CLIENT",
              code: object = 2) -> dict[str, object]:  # fmt: skip
    span = {"traceId": trace_id, "spanId": SPAN, "name": "GET", "kind": kind,
            "startTimeUnixNano": "1000", "endTimeUnixNano": 4000, "status": {"code": code},
            "attributes": [{"key": "db.system", "value": {"stringValue": "redis"}},
                           {"key": "server.port", "value": {"intValue": "6379"}},
                           {"key": "other", "value": {"arrayValue": {}}}]}  # fmt: skip
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}


@pytest.mark.parametrize(("kind", "code"), [("SPAN_KIND_CLIENT", "STATUS_CODE_ERROR"), (3, 2)])
def test_json_ids_are_hex_and_enums_are_names_or_numbers(kind: object, code: object) -> None:
    decoded = decode_traces(json.dumps(_json_doc(TRACE.upper(), kind, code)).encode(), True)
    (span,) = decoded.spans
    assert span.trace_id == TRACE and span.kind == KIND_CLIENT and span.error
    assert (span.start_ns, span.end_ns, span.service) == (1000, 4000, "api")
    assert span.attrs == {"db.system": "redis", "server.port": 6379}


def test_json_base64_ids_from_the_protobuf_json_mapping_are_accepted() -> None:
    import base64

    b64 = base64.b64encode(bytes.fromhex(TRACE)).decode()
    (span,) = decode_traces(json.dumps(_json_doc(b64)).encode(), True).spans
    assert span.trace_id == TRACE


def test_json_bad_trace_id_is_a_rejected_span_not_an_error() -> None:
    decoded = decode_traces(json.dumps(_json_doc("xyz")).encode(), True)
    assert decoded.spans == [] and decoded.rejected == 1
    assert "traceId: not 32 hex digits" in (decoded.reason or "")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe garbage", "not OTLP/JSON"),
        (b"[1, 2]", "$: expected a JSON object, got list"),
        (b'{"resourceSpans": {}}', "$.resourceSpans: expected a JSON array"),
        (json.dumps(_json_doc(kind="SPAN_KIND_WEIRD")).encode(), "kind: 'SPAN_KIND_WEIRD' is not"),
        (json.dumps(_json_doc()).replace('"1000"', '"soon"').encode(), "'soon' is not an integer"),
    ],
)
def test_garbage_json_is_one_clear_invalid_otlp(body: bytes, message: str) -> None:
    with pytest.raises(InvalidOtlp) as info:
        decode_traces(body, True)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_garbage_protobuf_is_one_clear_invalid_otlp() -> None:
    with pytest.raises(InvalidOtlp, match="not an OTLP ExportTraceServiceRequest protobuf"):
        decode_traces(b"\x0a\xff\xff\xff\xff\x0f garbage", False)


def test_gzip_inflates_within_the_limit_and_refuses_bombs_and_cut_streams() -> None:
    body = _pb_request()
    assert inflate(gzip.compress(body), "gzip", 1 << 20) == body
    assert inflate(body, "", 10) == body  # identity is not inflated (nor limited here)
    with pytest.raises(OtlpTooLarge, match="inflates past 1000 bytes"):
        inflate(gzip.compress(b"\0" * 100_000), "gzip", 1000)
    with pytest.raises(InvalidOtlp, match="truncated gzip"):
        inflate(gzip.compress(body)[:-12], "gzip", 1 << 20)
    with pytest.raises(InvalidOtlp, match="corrupt gzip"):
        inflate(b"not gzip at all", "gzip", 1 << 20)
    with pytest.raises(InvalidOtlp, match="unsupported Content-Encoding 'br'"):
        inflate(body, "br", 1 << 20)
