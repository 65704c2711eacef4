"""The embedded fault proxy as a real process, with real upstreams on 127.0.0.1.

Timing checks are lower bounds only (the CI box is small and busy).
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from harness.errors import FaultError, RollbackFailed
from harness.faults.proxy import ProxyInfo, ProxyProcess, ToxiproxyClient, start_proxy_process

# --- upstreams -------------------------------------------------------------------------------


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _Http(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def do_GET(self) -> None:
        self._reply(b"")

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._reply(body)

    def _reply(self, body: bytes) -> None:
        self.server.seen.append((self.command, self.path, body))
        payload = f"ok {self.command} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    seen: list[tuple[str, str, bytes]]


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(server: socketserver.TCPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def echo_upstream() -> Iterator[str]:
    yield from _serve(_EchoServer(("127.0.0.1", 0), _Echo))


@pytest.fixture(scope="module")
def http_server() -> Iterator[_HttpServer]:
    server = _HttpServer(("127.0.0.1", 0), _Http)
    server.seen = []
    for _ in _serve(server):
        yield server


# --- the proxy process -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    process = start_proxy_process(tmp_path_factory.mktemp("proxy") / "fault-proxy.log", seed=7)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def client(proxy_process: ProxyProcess) -> Iterator[ToxiproxyClient]:
    client = proxy_process.client()
    try:
        yield client
    finally:
        for name in client.proxies():
            client.delete_proxy(name)


@pytest.fixture
def echo(client: ToxiproxyClient, echo_upstream: str) -> ProxyInfo:
    return client.create_proxy("echo", echo_upstream)


@pytest.fixture
def web(client: ToxiproxyClient, http_server: _HttpServer) -> Iterator[ProxyInfo]:
    http_server.seen.clear()
    yield client.create_proxy("web", f"127.0.0.1:{http_server.server_address[1]}")


def _connect(info: ProxyInfo) -> socket.socket:
    return socket.create_connection(("127.0.0.1", info.listen_port), timeout=5)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _recv_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _round_trip_s(info: ProxyInfo, payload: bytes) -> float:
    with _connect(info) as sock:
        started = time.monotonic()
        sock.sendall(payload)
        assert _recv_exactly(sock, len(payload)) == payload
        return time.monotonic() - started


# --- TCP toxics ------------------------------------------------------------------------------


def test_clean_proxy_passes_bytes_and_counts_them(client: ToxiproxyClient,
                                                  echo: ProxyInfo) -> None:
    assert echo.listen.startswith("127.0.0.1:") and echo.listen_port > 0
    _round_trip_s(echo, b"x" * 100_000)
    stats = client.proxy("echo").stats
    assert stats["connections"] == 1
    assert stats["bytes_upstream"] == stats["bytes_downstream"] == 100_000


def test_latency_delays_each_round_trip(client: ToxiproxyClient, echo: ProxyInfo) -> None:
    client.add_toxic("echo", "latency", {"latency": 150, "jitter": 10})
    assert _round_trip_s(echo, b"ping") >= 0.13
    client.add_toxic("echo", "latency", {"latency": 100}, name="up", stream="upstream")
    assert _round_trip_s(echo, b"ping") >= 0.22


def test_latency_applies_to_open_connections(client: ToxiproxyClient, echo: ProxyInfo) -> None:
    with _connect(echo) as sock:
        sock.sendall(b"a")
        assert _recv_exactly(sock, 1) == b"a"
        client.add_toxic("echo", "latency", {"latency": 200})
        started = time.monotonic()
        sock.sendall(b"b")
        assert _recv_exactly(sock, 1) == b"b"
        assert time.monotonic() - started >= 0.18


def test_bandwidth_limits_throughput(client: ToxiproxyClient, echo: ProxyInfo) -> None:
    client.add_toxic("echo", "bandwidth", {"rate": 100})  # 100 KB/s
    assert _round_trip_s(echo, b"z" * 50_000) >= 0.45  # 50 KB take 0.5 s


def test_slicer_keeps_the_bytes_intact(client: ToxiproxyClient, echo: ProxyInfo) -> None:
    client.add_toxic("echo", "slicer", {"average_size": 10, "size_variation": 5, "delay": 2000})
    payload = bytes(range(256)) * 2
    assert _round_trip_s(echo, payload) >= 0.02  # about 50 slices, 2 ms apart


def test_reset_peer_resets(client: ToxiproxyClient, echo: ProxyInfo) -> None:
    client.add_toxic("echo", "reset_peer", {"timeout": 100})
    with _connect(echo) as sock:
        started = time.monotonic()
        sock.sendall(b"hello")
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
        assert time.monotonic() - started >= 0.08


def test_timeout_holds_data_until_removed(client: ToxiproxyClient, echo: ProxyInfo) -> None:
    client.add_toxic("echo", "timeout", {"timeout": 0})
    with _connect(echo) as sock:
        sock.settimeout(0.3)
        sock.sendall(b"lost")
        with pytest.raises(TimeoutError):
            sock.recv(10)
        client.remove_toxic("echo", "timeout_downstream")
        sock.settimeout(5)
        sock.sendall(b"found")
        assert _recv_exactly(sock, 5) == b"found"  # the echo of "lost" was dropped
    with _connect(echo) as sock:
        sock.sendall(b"again")
        assert _recv_exactly(sock, 5) == b"again"


def test_timeout_closes_after_its_delay(client: ToxiproxyClient, echo: ProxyInfo) -> None:
    client.add_toxic("echo", "timeout", {"timeout": 200})
    with _connect(echo) as sock:
        started = time.monotonic()
        sock.sendall(b"x")
        assert _recv_to_eof(sock) == b""
        assert time.monotonic() - started >= 0.18


def test_limit_data_closes_after_n_bytes(client: ToxiproxyClient, echo: ProxyInfo) -> None:
    client.add_toxic("echo", "limit_data", {"bytes": 10})
    with _connect(echo) as sock:
        sock.sendall(b"0123456789abcdefghij")
        assert _recv_to_eof(sock) == b"0123456789"


def test_slow_close_delays_the_close(client: ToxiproxyClient, echo: ProxyInfo) -> None:
    client.add_toxic("echo", "slow_close", {"delay": 200})
    with _connect(echo) as sock:
        sock.sendall(b"bye")
        sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        assert _recv_to_eof(sock) == b"bye"
        assert time.monotonic() - started >= 0.18


def test_toxicity_zero_never_applies(client: ToxiproxyClient, echo: ProxyInfo) -> None:
    client.add_toxic("echo", "limit_data", {"bytes": 1}, toxicity=0.0)
    _round_trip_s(echo, b"all of it")


def test_unreachable_upstream_closes_the_client(client: ToxiproxyClient) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    info = client.create_proxy("dead", dead)
    with _connect(info) as conn:
        assert _recv_to_eof(conn) == b""
    assert client.proxy("dead").stats["upstream_errors"] == 1


def test_down_refuses_and_up_restores_the_same_port(client: ToxiproxyClient,
                                                    echo: ProxyInfo) -> None:
    with _connect(echo) as open_sock:
        assert not client.disable("echo").enabled
        assert _recv_to_eof(open_sock) == b""  # open connections are closed
    with pytest.raises(ConnectionRefusedError):
        _connect(echo)
    again = client.enable("echo")
    assert again.enabled and again.listen == echo.listen
    _round_trip_s(echo, b"back")


def test_reset_restores_everything(client: ToxiproxyClient, echo: ProxyInfo) -> None:
    client.add_toxic("echo", "timeout")
    client.add_toxic("echo", "latency", {"latency": 500})
    client.disable("echo")
    client.reset()
    info = client.proxy("echo")
    assert info.enabled and info.toxics == ()
    assert _round_trip_s(echo, b"fine") < 0.5


# --- http_error ------------------------------------------------------------------------------


def test_http_error_answers_without_the_upstream(client: ToxiproxyClient, web: ProxyInfo,
                                                 http_server: _HttpServer) -> None:
    client.add_toxic("web", "http_error", {"status": 503, "body": "nope"})
    with requests.Session() as session:
        for _ in range(3):
            response = session.get(f"http://{web.listen}/pay", timeout=5)
            assert (response.status_code, response.text) == (503, "nope")
            assert response.headers["X-Fault-Injected"] == "http_error"
    assert http_server.seen == []
    assert client.proxy("web").stats["http_errors"] == 3


def test_http_error_first_n_fails_exactly_n_on_keep_alive(
        client: ToxiproxyClient, web: ProxyInfo, http_server: _HttpServer) -> None:
    client.add_toxic("web", "http_error", {"status": 500, "first_n": 3})
    with requests.Session() as session:
        codes = [session.get(f"http://{web.listen}/r{i}", timeout=5).status_code
                 for i in range(6)]
    assert codes == [500, 500, 500, 200, 200, 200]
    assert [path for _, path, _ in http_server.seen] == ["/r3", "/r4", "/r5"]
    assert client.proxy("web").stats["connections"] == 1  # one keep-alive connection


def test_http_error_respects_body_boundaries(client: ToxiproxyClient, web: ProxyInfo,
                                             http_server: _HttpServer) -> None:
    client.add_toxic("web", "http_error", {"status": 502, "first_n": 2})
    conn = http.client.HTTPConnection("127.0.0.1", web.listen_port, timeout=5)
    try:
        statuses = []
        conn.request("POST", "/chunked", body=iter([b"abc", b"defgh"]), encode_chunked=True)
        statuses.append(_status_and_body(conn))
        conn.request("POST", "/sized", body=b"GET /smuggled HTTP/1.1\r\n\r\n")
        statuses.append(_status_and_body(conn))
        conn.request("POST", "/passes", body=iter([b"12", b"345"]), encode_chunked=True)
        statuses.append(_status_and_body(conn))
        conn.request("GET", "/last")
        statuses.append(_status_and_body(conn))
    finally:
        conn.close()
    assert [s for s, _ in statuses] == [502, 502, 200, 200]
    assert statuses[3][1] == b"ok GET /last"
    assert http_server.seen == [("POST", "/passes", b"12345"), ("GET", "/last", b"")]


def _status_and_body(conn: http.client.HTTPConnection) -> tuple[int, bytes]:
    response = conn.getresponse()
    return response.status, response.read()


def test_removing_http_error_lets_requests_through(client: ToxiproxyClient,
                                                   web: ProxyInfo) -> None:
    client.add_toxic("web", "http_error", {"status": 503}, name="boom")
    with requests.Session() as session:
        assert session.get(f"http://{web.listen}/", timeout=5).status_code == 503
        client.remove_toxic("web", "boom")
        assert session.get(f"http://{web.listen}/", timeout=5).status_code == 200


def test_http_error_leaves_other_protocols_alone(client: ToxiproxyClient,
                                                 echo: ProxyInfo) -> None:
    client.add_toxic("echo", "http_error", {"status": 503})
    assert _round_trip_s(echo, b"PING") < 5  # not an HTTP request: passed through, not held
    assert _round_trip_s(echo, b"\x00\x00\x00\x08\x04\xd2\x16\x2f") < 5
    assert client.proxy("echo").stats["http_errors"] == 0


# --- the API ---------------------------------------------------------------------------------


def _api(process: ProxyProcess, method: str, path: str, body: bytes | None = None
         ) -> tuple[int, Any]:
    response = requests.request(method, process.api_url + path, data=body, timeout=5)
    return response.status_code, response.json() if response.content else None


@pytest.mark.parametrize("method, path, body, status, needle", [
    ("POST", "/proxies", b"{not json", 400, "not JSON"),
    ("POST", "/proxies", b"[1, 2]", 400, "JSON object"),
    ("POST", "/proxies", b'{"name": "x"}', 400, "upstream"),
    ("POST", "/proxies", b'{"name": "x", "upstream": "127.0.0.1:1", "listen": "0.0.0.0:0"}',
     400, "loopback"),
    ("POST", "/proxies", b'{"name": "x", "upstream": "8.8.8.8:53"}', 400, "loopback"),
    ("POST", "/proxies", b'{"name": "echo", "upstream": "127.0.0.1:1"}', 409, "exists"),
    ("GET", "/proxies/nope", None, 404, "proxy not found"),
    ("POST", "/proxies/echo/toxics", b'{"type": "lag"}', 400, "invalid toxic type"),
    ("POST", "/proxies/echo/toxics", b'{"type": "latency", "attributes": {"latency": -5}}',
     400, "attributes.latency"),
    ("GET", "/proxies/echo/toxics/nope", None, 404, "toxic not found"),
    ("DELETE", "/proxies/echo/toxics/nope", None, 404, "toxic not found"),
    ("DELETE", "/version", None, 405, "not allowed"),
    ("GET", "/nothing/here", None, 404, "no such endpoint"),
])
def test_bad_api_calls_get_json_errors_and_the_proxy_keeps_serving(
        proxy_process: ProxyProcess, client: ToxiproxyClient, echo: ProxyInfo,
        method: str, path: str, body: bytes | None, status: int, needle: str) -> None:
    got_status, answer = _api(proxy_process, method, path, body)
    assert (got_status, answer["status"]) == (status, status)
    assert needle in answer["error"]
    _round_trip_s(echo, b"still here")


def test_duplicate_toxic_is_409_and_garbage_does_not_kill_the_api(
        proxy_process: ProxyProcess, client: ToxiproxyClient, echo: ProxyInfo) -> None:
    client.add_toxic("echo", "latency", {"latency": 1})
    status, answer = _api(proxy_process, "POST", "/proxies/echo/toxics",
                          json.dumps({"type": "latency"}).encode())
    assert status == 409 and "already exists" in answer["error"]
    port = int(proxy_process.api_url.rpartition(":")[2])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
        assert _recv_to_eof(sock).startswith(b"HTTP/1.1 400 ")
    assert client.version().startswith("cost-harness-fault-proxy")


def test_client_errors_name_the_call(client: ToxiproxyClient, echo: ProxyInfo) -> None:
    with pytest.raises(FaultError, match=r"POST /proxies/echo/toxics -> 400: invalid toxic"):
        client.add_toxic("echo", "lag")
    with pytest.raises(RollbackFailed, match=r"-> 404: toxic not found"):
        client.remove_toxic("echo", "gone")
    client.remove_toxic("echo", "gone", missing_ok=True)
    toxic = client.add_toxic("echo", "latency", {"latency": 5})
    assert client.update_toxic("echo", toxic.name, {"jitter": 2}).attributes == {
        "latency": 5, "jitter": 2}


def test_unreachable_proxy_is_a_fault_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FaultError, match="failed"):
        ToxiproxyClient(f"toxiproxy://127.0.0.1:{port}", timeout_s=1).version()
    with pytest.raises(FaultError, match="expected http"):
        ToxiproxyClient("ftp://127.0.0.1:1")


# --- the process -----------------------------------------------------------------------------


def test_sigterm_stops_the_process_within_2s(tmp_path: Path, echo_upstream: str) -> None:
    process = start_proxy_process(tmp_path / "proxy.log")
    try:
        info = process.client().create_proxy("echo", echo_upstream)
        with _connect(info) as sock:
            sock.sendall(b"hi")
            assert _recv_exactly(sock, 2) == b"hi"
            started = time.monotonic()
            os.kill(process.pid, signal.SIGTERM)
            assert process.child.popen.wait(timeout=2) == 0
            assert time.monotonic() - started < 2
            assert _recv_to_eof(sock) == b""
        with pytest.raises(ConnectionRefusedError):
            _connect(info)
        assert not psutil.pid_exists(process.pid) or psutil.Process(process.pid).status() == (
            psutil.STATUS_ZOMBIE)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["proxy.log"]
        assert "stopped" in (tmp_path / "proxy.log").read_text()
    finally:
        process.stop()
