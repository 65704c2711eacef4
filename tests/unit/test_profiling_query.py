"""The querier client against a fake Pyroscope (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.artifacts import PhaseWindow
from harness.profiling import UNTAGGED, ProfileQueryError, PyroscopeQuery, cpu_by_endpoint
from harness.profiling.pprof import encode_merged
from harness.profiling.proto import _CLASSES
from harness.profiling.query import selector
from harness.util import free_port

AUTH = "Basic dXNlcjpwYXNz"  # user:pass
STACK = (("main", "app.py", 1), ("view", "app.py", 4))
CPU_NS = {"GET /a": 3 * 10**9, "": 10**9}  # "" = the untagged series


class FakePyroscope(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []
    mode = "ok"

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append({"path": self.path, "auth": self.headers.get("Authorization"),
                          "tenant": self.headers.get("X-Scope-OrgID"), "body": body})  # fmt: skip
        if self.headers.get("Authorization") != AUTH:
            return self.reply(401, b'{"code":"unauthenticated","message":"no"}', "application/json")
        if self.mode == "garbage":
            return self.reply(200, b"<html>", "text/html")
        if self.path.endswith("/SelectSeries"):
            series = [{"labels": [{"name": "service_name", "value": "shop"}]
                       + ([{"name": "endpoint", "value": ep}] if ep else []),
                       "points": [{"value": ns / 2, "timestamp": "1"},
                                  {"value": ns / 2, "timestamp": "2"}]}
                      for ep, ns in CPU_NS.items()]  # fmt: skip
            return self.reply(200, json.dumps({"series": series}).encode(), "application/json")
        request: Any = _CLASSES["SelectMergeProfileRequest"]()
        request.ParseFromString(body)
        endpoint = re.search(r'endpoint="([^"]*)"', request.label_selector)
        name = endpoint.group(1) if endpoint else "GET /a"
        pprof = encode_merged({UNTAGGED: {STACK: CPU_NS[name]}}, request.start * 10**6,
                              (request.end - request.start) * 10**6, 10**7)  # fmt: skip
        return self.reply(200, pprof, "application/proto")

    def reply(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def fake() -> Iterator[str]:
    FakePyroscope.seen, FakePyroscope.mode = [], "ok"
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePyroscope)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_cpu_by_endpoint_from_select_series(fake: str) -> None:
    query = PyroscopeQuery(fake + "/", basic_auth=("user", "pass"), tenant="team-a")
    assert query.cpu_by_endpoint("shop", 1000.0, 1060.0) == {"GET /a": 3.0, UNTAGGED: 1.0}
    (call,) = FakePyroscope.seen
    assert call["path"] == "/querier.v1.QuerierService/SelectSeries"
    assert call["tenant"] == "team-a"
    sent = json.loads(call["body"])
    assert sent["groupBy"] == ["endpoint"] and sent["labelSelector"] == '{service_name="shop"}'
    assert (sent["start"], sent["end"]) == (1_000_000, 1_060_000)
    assert sent["profileTypeID"] == "process_cpu:cpu:nanoseconds:cpu:nanoseconds"


def test_export_writes_the_receiver_layout_per_phase(fake: str, tmp_path: Path) -> None:
    query = PyroscopeQuery(fake, basic_auth=("user", "pass"))
    phases = [
        PhaseWindow(name="warmup", start=0, end=10, priced=False),
        PhaseWindow(name="steady", start=10, end=70),
        PhaseWindow(name="open", start=70),
    ]
    index = query.export(tmp_path / "profiles", "shop", phases)
    assert {(e.phase, e.endpoint) for e in index.entries} == {
        (p, ep) for p in ("warmup", "steady") for ep in ("GET /a", UNTAGGED)
    }
    assert cpu_by_endpoint(tmp_path / "profiles", phase="steady") == {"GET /a": 3.0,
                                                                      UNTAGGED: 1.0}  # fmt: skip
    merges = [c for c in FakePyroscope.seen if c["path"].endswith("SelectMergeProfile")]
    assert len(merges) == 4


def test_errors_are_clear(fake: str) -> None:
    with pytest.raises(ProfileQueryError, match="HTTP 401 unauthenticated: no .*basic auth"):
        PyroscopeQuery(fake).cpu_by_endpoint("shop", 0, 1)
    FakePyroscope.mode = "garbage"
    with pytest.raises(ProfileQueryError, match="unexpected answer"):
        PyroscopeQuery(fake, ("user", "pass")).cpu_by_endpoint("shop", 0, 1)
    with pytest.raises(ProfileQueryError, match="cannot reach"):
        PyroscopeQuery(f"http://127.0.0.1:{free_port()}").cpu_by_endpoint("shop", 0, 1)
    with pytest.raises(ProfileQueryError, match="http"):
        PyroscopeQuery("ftp://example")


def test_selector_escapes_values() -> None:
    assert (
        selector("s", {"endpoint": 'GET /"x"\\'})
        == '{service_name="s",endpoint="GET /\\"x\\"\\\\"}'
    )
