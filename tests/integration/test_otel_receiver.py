"""The OTLP receiver process with the real OpenTelemetry SDK exporter (protobuf, gzip), OTLP/JSON
posted as a collector would, and bad payloads: each answered with one clear message, counted,
and the receiver keeps serving. Late spans (after the stack is down) are counted."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from harness.otel.receiver import OtlpReceiver

TRACE = "5b8efff798038103d269b633813fc60c"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(tmp_path, max_body=64 * 1024) as running:
        yield running


def _export(endpoint: str, compression: Compression) -> str:
    """One SERVER span with a DB, a cache and an HTTP child, through the SDK's exporter."""
    provider = TracerProvider(resource=Resource.create({"service.name": "api"}))
    exporter = OTLPSpanExporter(endpoint=endpoint + "/v1/traces", compression=compression)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("GET /x", kind=trace.SpanKind.SERVER) as root:
        for attrs in ({"db.system": "postgresql", "db.statement": "SELECT 1"},
                      {"db.system": "postgresql", "db.statement": "INSERT INTO t VALUES (1)"},
                      {"db.system": "redis", "db.statement": "GET k"},
                      {"http.method": "POST", "http.url": "http://127.0.0.1:9/charge"}):
            with tracer.start_as_current_span("op", kind=trace.SpanKind.CLIENT,
                                              attributes=attrs):  # fmt: skip
                pass
        trace_id = f"{root.get_span_context().trace_id:032x}"
    provider.shutdown()
    return trace_id


def _json_body(trace_id: str = TRACE) -> bytes:
    span = {"traceId": trace_id, "spanId": "051581bf3cb55c13", "name": "GET /y",
            "kind": "SPAN_KIND_SERVER", "startTimeUnixNano": "1000000",
            "endTimeUnixNano": "4000000", "status": {"code": "STATUS_CODE_ERROR"}}  # fmt: skip
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def test_sdk_protobuf_gzip_and_json_spans_become_one_row_per_trace(
    receiver: OtlpReceiver, tmp_path: Path
) -> None:
    plain = _export(receiver.endpoint, Compression.NoCompression)
    zipped = _export(receiver.endpoint, Compression.Gzip)
    answer = requests.post(receiver.endpoint + "/v1/traces", data=_json_body(), timeout=5,
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code == 200 and answer.json() == {}
    stats = receiver.stop(grace_s=2)
    assert (stats["spans"], stats["payloads"], stats["rejected_payloads"]) == (11, 11, 0)
    rows = {r["trace_id"]: r for r in pq.read_table(tmp_path / "traces.parquet").to_pylist()}
    assert set(rows) == {plain, zipped, TRACE}
    for trace_id in (plain, zipped):
        row = rows[trace_id]
        assert (row["spans"], row["db_reads"], row["db_writes"], row["cache_ops"]) == (5, 1, 1, 1)
        assert row["external"] == "127.0.0.1:9=1" and row["service"] == "api"
        assert row["server_ms"] is not None and row["server_ms"] >= 0
    assert rows[TRACE]["server_ms"] == 3.0 and rows[TRACE]["span_errors"] == 1
    saved = json.loads((tmp_path / "otel.json").read_text())
    assert saved["traces"] == 3 and saved["drained"] is True


def _post(receiver: OtlpReceiver, body: bytes, content_type: str,
          **headers: str) -> requests.Response:  # fmt: skip
    return requests.post(receiver.endpoint + "/v1/traces", data=body, timeout=5,
                         headers={"Content-Type": content_type, **headers})  # fmt: skip


def test_bad_payloads_get_one_clear_message_are_counted_and_serving_goes_on(
    receiver: OtlpReceiver, tmp_path: Path
) -> None:
    cases = [
        (b"\x0a\xff\xff\xff\xff\x0f garbage", "application/x-protobuf", {}, 400,
         "not an OTLP ExportTraceServiceRequest protobuf"),
        (b"{not json", "application/json", {}, 400, "not OTLP/JSON"),
        (b"x" * 100, "application/json", {"Content-Encoding": "gzip"}, 400, "corrupt gzip"),
        (gzip.compress(b"\0" * 600_000), "application/x-protobuf", {"Content-Encoding": "gzip"},
         413, "inflates past"),
        (b"\0" * 70_000, "application/x-protobuf", {}, 413, "over the 65536-byte limit"),
        (b"a=b", "text/plain", {}, 415, "unsupported Content-Type 'text/plain'"),
    ]  # fmt: skip
    for body, kind, headers, status, message in cases:
        answer = _post(receiver, body, kind, **headers)
        assert answer.status_code == status, (message, answer.text)
        assert message in answer.json()["message"] and "\n" not in answer.json()["message"]
    ok = _post(receiver, _json_body(), "application/json")  # still serving
    assert ok.status_code == 200
    stats = receiver.stop(grace_s=0)
    assert stats["rejected_payloads"] == len(cases) and stats["spans"] == 1
    assert stats["first_error"].startswith("400 not an OTLP ExportTraceServiceRequest")


def test_spans_without_a_valid_trace_id_are_a_partial_success(receiver: OtlpReceiver) -> None:
    answer = _post(receiver, _json_body("0" * 32), "application/json")
    assert answer.status_code == 200
    assert answer.json()["partialSuccess"]["rejectedSpans"] == "1"
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\0" * 16, name="x")
    proto = _post(receiver, request.SerializeToString(), "application/x-protobuf")
    response = ExportTraceServiceResponse.FromString(proto.content)
    assert proto.headers["Content-Type"] == "application/x-protobuf"
    assert response.partial_success.rejected_spans == 1
    assert receiver.stop(grace_s=0)["rejected_spans"] == 2


def test_metrics_and_logs_get_an_empty_success_and_control_needs_the_token(
    receiver: OtlpReceiver,
) -> None:
    for path in ("/v1/metrics", "/v1/logs"):
        answer = requests.post(receiver.endpoint + path, data=b"", timeout=5,
                               headers={"Content-Type": "application/x-protobuf"})  # fmt: skip
        assert answer.status_code == 200 and answer.content == b""
    refused = requests.post(receiver.endpoint + "/-/stop", data=b"0", timeout=5)
    assert refused.status_code == 403
    assert requests.get(receiver.endpoint + "/ready", timeout=5).status_code == 200


def test_spans_after_the_stack_stopped_are_counted_late(receiver: OtlpReceiver,
                                                        tmp_path: Path) -> None:  # fmt: skip
    _export(receiver.endpoint, Compression.NoCompression)
    receiver.stack_stopped()
    late = _export(receiver.endpoint, Compression.NoCompression)
    stats = receiver.stop(grace_s=1)
    assert stats["late_spans"] == 5 and stats["spans"] == 10
    ids = set(pq.read_table(tmp_path / "traces.parquet")["trace_id"].to_pylist())
    assert late in ids  # counted late, and still in its trace


def test_an_export_racing_the_stop_is_refused_and_counted(tmp_path: Path) -> None:
    from harness.otel.decode import Decoded, Span
    from harness.otel.server import OtlpServer

    server = OtlpServer(tmp_path, "token")
    assert server.accept(Decoded([Span(TRACE, 2, 0, 1, False, "api")]))
    assert server.stop() == 1
    assert server.accept(Decoded([Span(TRACE, 2, 0, 1, False, "api")])) is False
    assert len(pq.read_table(tmp_path / "traces.parquet")) == 1
