"""A cheap HTTP target that sends OTLP spans to ``OTEL_EXPORTER_OTLP_ENDPOINT``: one SERVER
span per request, and while ``SPAN_FLOOD_FILE`` exists ``SPAN_FLOOD_SPANS`` (100) per request
— real protobuf spans (a SERVER span and DB / cache / HTTP client spans with the attributes
instrumentations set) in the request's trace (from its ``traceparent``), exported in batches
every 100 ms by a thread.

Spans are not built by the SDK per request (that would make the *target* the bottleneck):
one ``ResourceSpans`` holding the spans of one trace is serialized once with a marker trace id,
and per request the marker is replaced by the request's trace id (bytes.replace), so the
receiver decodes exactly what an SDK would send while the target stays cheap.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.request
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from harness.instrument import serve_wsgi

MARKER = b"\xa5" * 16
EXPORT_EVERY_S = 0.1


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def trace_template(spans: int) -> bytes:
    """One serialized ``ResourceSpans`` (a request's spans), its trace id set to MARKER."""
    resource = ResourceSpans()
    resource.resource.attributes.extend([_kv("service.name", "flood"),
                                         _kv("telemetry.sdk.language", "python")])
    scope = resource.scope_spans.add()
    scope.scope.name = "bench"
    kinds = [
        (3, {"db.system": "postgresql", "db.statement": "SELECT * FROM t WHERE id = %s",
             "db.name": "app", "server.address": "127.0.0.1", "server.port": 5432}),
        (3, {"db.system": "redis", "db.statement": "GET k", "server.port": 6379}),
        (3, {"http.method": "POST", "http.url": "http://127.0.0.1:9/charge",
             "http.status_code": 200, "server.address": "127.0.0.1", "server.port": 9}),
        (1, {"code.function": "work", "thread.id": 1}),
    ]  # fmt: skip
    now = time.time_ns()
    for index in range(spans):
        kind, attrs = (2, {"http.method": "GET", "http.route": "/", "http.status_code": 200,
                           "http.target": "/", "net.host.port": 8000}) if index == 0 \
            else kinds[index % len(kinds)]  # fmt: skip
        span = scope.spans.add(trace_id=MARKER, span_id=(index + 1).to_bytes(8, "big"),
                               kind=kind, name=f"span {index}", start_time_unix_nano=now,
                               end_time_unix_nano=now + 1_000_000)  # fmt: skip
        span.attributes.extend(_kv(k, v) for k, v in attrs.items())
    blob = ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString()
    if blob.count(MARKER) != spans:
        raise SystemExit("the marker is not unique in the template")
    return blob


class Flood:
    """Trace ids of the requests served while flooding, exported every EXPORT_EVERY_S."""

    def __init__(self, endpoint: str, flag: str, spans: int) -> None:
        self.url = endpoint.rstrip("/") + "/v1/traces"
        self.flag = flag
        self.templates = {True: trace_template(spans), False: trace_template(1)}
        self.pending: list[tuple[bytes, bool]] = []
        self.lock = threading.Lock()
        self.on = False
        threading.Thread(target=self._loop, daemon=True).start()

    def add(self, traceparent: str | None) -> None:
        if traceparent and len(traceparent) >= 35:
            with self.lock:
                self.pending.append((bytes.fromhex(traceparent[3:35]), self.on))

    def _loop(self) -> None:
        while True:
            time.sleep(EXPORT_EVERY_S)
            self.on = os.path.exists(self.flag)
            with self.lock:
                ids, self.pending = self.pending, []
            if ids:
                body = b"".join(self.templates[on].replace(MARKER, tid) for tid, on in ids)
                request = urllib.request.Request(self.url, body, method="POST", headers={
                    "Content-Type": "application/x-protobuf"})
                try:
                    urllib.request.urlopen(request, timeout=10).read()
                except OSError as exc:
                    print(f"flood: export failed: {exc}", file=sys.stderr)


def main() -> None:
    flood = Flood(os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"], os.environ["SPAN_FLOOD_FILE"],
                  int(os.environ.get("SPAN_FLOOD_SPANS", "100")))  # fmt: skip

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("PATH_INFO") != "/health":
            flood.add(environ.get("HTTP_TRACEPARENT"))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    serve_wsgi(app, threads=4)


if __name__ == "__main__":
    main()
