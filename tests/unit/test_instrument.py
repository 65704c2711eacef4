"""harness.instrument: WSGI and ASGI middleware, per-request counters, log bytes, Pyroscope."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from harness.artifacts.telemetry import Telemetry, parse_server_timing
from harness.errors import TargetError
from harness.instrument import ASGIMiddleware, LogBytesHandler, WSGIMiddleware, counters
from harness.instrument import environment as instrument_env
from harness.instrument.asgi import Message, Receive, Scope, Send
from targets.sample.app import burn_cpu

StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class FakeServer:
    """Calls a WSGI app the way a server does and records what it was given."""

    def __init__(self) -> None:
        self.status = ""
        self.headers: dict[str, str] = {}
        self.written: list[bytes] = []

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], object]:
        self.status, self.headers = status, dict(headers)
        return self.written.append

    def call(self, app: WSGIApp, path: str = "/") -> bytes:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
        result = app(environ, self.start_response)
        try:
            return b"".join([*self.written, *result])
        finally:
            getattr(result, "close", lambda: None)()

    @property
    def telemetry(self) -> Telemetry:
        return parse_server_timing(self.headers["Server-Timing"])


def plain_app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_wsgi_adds_server_timing_and_served_by() -> None:
    server = FakeServer()
    assert server.call(WSGIMiddleware(plain_app, replica="r-1")) == b"ok"
    assert server.status == "200 OK"
    assert server.headers["X-Served-By"] == "r-1"
    assert server.headers["Content-Type"] == "text/plain"
    assert server.headers["Server-Timing"].startswith("cpu;dur=")
    assert server.telemetry == Telemetry(cpu_ms=server.telemetry.cpu_ms)


def test_wsgi_reports_the_counters_of_its_request_only() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        counters.db_read(3)
        counters.db_write()
        counters.cache_hit(2)
        counters.cache_miss()
        counters.external("payments")
        counters.external("payments")
        counters.external("geo", 2)
        counters.retry()
        counters.log_bytes(100)
        return plain_app(environ, start_response)

    counters.db_read()  # outside a request: a no-op
    counters.external("x")
    first, second = FakeServer(), FakeServer()
    first.call(WSGIMiddleware(app, replica="r"))
    second.call(WSGIMiddleware(plain_app, replica="r"))
    expected = Telemetry(
        db_reads=3, db_writes=1, cache_hits=2, cache_misses=1,
        external={"payments": 2, "geo": 2}, retries=1, log_bytes=100,
    )  # fmt: skip
    assert first.telemetry == replace(expected, cpu_ms=first.telemetry.cpu_ms)
    assert second.telemetry == Telemetry(cpu_ms=second.telemetry.cpu_ms)  # nothing leaked


def test_vendor_names_are_made_header_safe() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        counters.external('pay ments="x"\r\n')
        return plain_app(environ, start_response)

    server = FakeServer()
    server.call(WSGIMiddleware(app, replica="r"))
    assert server.telemetry.external == {"pay_ments__x___": 1}
    assert not server.telemetry.malformed


def test_wsgi_charges_the_cpu_of_a_materialized_body() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        burn_cpu(30)
        return [b"done"]

    server = FakeServer()
    server.call(WSGIMiddleware(app, replica="r"))
    assert server.telemetry.cpu_ms is not None and 29 <= server.telemetry.cpu_ms < 45


def test_wsgi_streaming_charges_up_to_the_first_chunk_and_closes() -> None:
    closed: list[bool] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        try:
            burn_cpu(20)
            start_response("200 OK", [])  # a generator app may start the response lazily
            yield b""
            yield b"first"
            burn_cpu(40)  # after the headers left: not charged
            yield b"second"
        finally:
            closed.append(True)

    server = FakeServer()
    assert server.call(WSGIMiddleware(app, replica="r")) == b"firstsecond"
    assert server.telemetry.cpu_ms is not None and 19 <= server.telemetry.cpu_ms < 35
    assert closed == [True]


def test_wsgi_close_reaches_the_app_even_if_the_body_is_never_read() -> None:
    class Body:
        closed = False

        def __iter__(self) -> Iterator[bytes]:
            yield b"x"

        def close(self) -> None:
            Body.closed = True

    def app(environ: dict[str, Any], start_response: StartResponse) -> Body:
        start_response("200 OK", [])
        return Body()

    server = FakeServer()
    result = WSGIMiddleware(app, replica="r")({"PATH_INFO": "/"}, server.start_response)
    assert isinstance(result, Iterable)
    result.close()  # type: ignore[attr-defined]
    assert Body.closed
    assert "Server-Timing" in server.headers


def test_wsgi_write_api_gets_headers_first_and_the_apps_list_stays_untouched() -> None:
    shared = [("Content-Type", "text/plain")]

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", shared)
        write(b"early")
        return [b"late"]

    for _ in range(2):
        server = FakeServer()
        assert server.call(WSGIMiddleware(app, replica="r")) == b"earlylate"
        assert server.telemetry.cpu_ms is not None
    assert shared == [("Content-Type", "text/plain")]


def test_wsgi_requests_on_two_threads_keep_their_own_cpu_and_counters() -> None:
    barrier = threading.Barrier(2, timeout=10)

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        heavy = environ["PATH_INFO"] == "/heavy"
        for _ in range(5):
            barrier.wait()  # both requests are in flight at every step
            counters.db_read() if heavy else counters.cache_hit()
            burn_cpu(8 if heavy else 1)
        return plain_app(environ, start_response)

    wrapped = WSGIMiddleware(app, replica="r")
    servers = {"/heavy": FakeServer(), "/light": FakeServer()}
    threads = [threading.Thread(target=s.call, args=(wrapped, p)) for p, s in servers.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    heavy, light = servers["/heavy"].telemetry, servers["/light"].telemetry
    assert (heavy.db_reads, heavy.cache_hits) == (5, None)
    assert (light.db_reads, light.cache_hits) == (None, 5)
    assert heavy.cpu_ms is not None and 38 <= heavy.cpu_ms < 55
    assert light.cpu_ms is not None and 4 <= light.cpu_ms < 12


def test_default_replica_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_REPLICA", "shop-2")
    server = FakeServer()
    server.call(WSGIMiddleware(plain_app))
    assert server.headers["X-Served-By"] == "shop-2"
    monkeypatch.delenv("HARNESS_REPLICA")
    assert instrument_env.default_replica().startswith(f"{socket.gethostname()}-")


def test_log_bytes_handler_counts_records_of_the_request() -> None:
    logger = logging.getLogger("test.instrument.logbytes")
    logger.setLevel(logging.INFO)
    handler = LogBytesHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        logger.info("hello")  # "INFO hello" + newline = 11 bytes
        logger.warning("grüße")  # "WARNING grüße" is 15 bytes in UTF-8 + newline = 16
        logger.debug("not emitted at INFO")
        return plain_app(environ, start_response)

    try:
        logger.info("outside any request")
        server = FakeServer()
        server.call(WSGIMiddleware(app, replica="r"))
    finally:
        logger.removeHandler(handler)
    assert server.telemetry.log_bytes == 27


class FakePyroscope(types.ModuleType):
    """Stands in for the optional pyroscope-io agent (not a dependency of the harness)."""

    LineNo = types.SimpleNamespace(First="First", LastInstruction="LastInstruction")

    def __init__(self) -> None:
        super().__init__("pyroscope")
        self.configured: list[dict[str, Any]] = []
        self.tags: list[tuple[str, str, str]] = []  # ("add" | "remove", key, value)

    def configure(self, **options: Any) -> None:
        self.configured.append(options)

    def add_thread_tag(self, key: str, value: str) -> None:
        self.tags.append(("add", key, value))

    def remove_thread_tag(self, key: str, value: str) -> None:
        self.tags.append(("remove", key, value))


@pytest.fixture
def fake_pyroscope(monkeypatch: pytest.MonkeyPatch) -> FakePyroscope:
    module = FakePyroscope()
    monkeypatch.setitem(sys.modules, "pyroscope", module)
    monkeypatch.setattr(instrument_env, "_pyroscope_configured", False)
    return module


def test_pyroscope_tags_each_request_only_when_configured(
    fake_pyroscope: FakePyroscope, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HARNESS_PYROSCOPE_URL", raising=False)
    FakeServer().call(WSGIMiddleware(plain_app, replica="r"))
    assert fake_pyroscope.tags == [] and fake_pyroscope.configured == []
    monkeypatch.setenv("HARNESS_PYROSCOPE_URL", "http://127.0.0.1:4040")
    monkeypatch.setenv("HARNESS_SERVICE", "shop")
    wrapped = WSGIMiddleware(plain_app, replica="r")
    WSGIMiddleware(plain_app, replica="r")  # a second middleware does not reconfigure
    FakeServer().call(wrapped, "/cheap")
    assert fake_pyroscope.tags == [("add", "endpoint", "GET /cheap"),
                                   ("remove", "endpoint", "GET /cheap")]  # fmt: skip
    options = {"application_name": "shop", "server_address": "http://127.0.0.1:4040"}
    assert fake_pyroscope.configured == [{**options, "tags": {"replica": "r"}, "sample_rate": 100,
                                          "line_no": "First", **instrument_env.AGENT_OPTIONS}]


def test_pyroscope_failing_to_start_is_a_target_error(
    fake_pyroscope: FakePyroscope, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**options: Any) -> None:
        raise RuntimeError("bad address")

    monkeypatch.setattr(fake_pyroscope, "configure", broken)
    monkeypatch.setenv("HARNESS_PYROSCOPE_URL", "nonsense")
    with pytest.raises(TargetError, match="bad address"):
        WSGIMiddleware(plain_app)


# --- ASGI -------------------------------------------------------------------------------


class ASGIRecorder:
    """The server side of one ASGI HTTP request."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def receive(self) -> Message:
        await asyncio.sleep(0)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Message) -> None:
        await asyncio.sleep(0)
        self.messages.append(message)

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    @property
    def telemetry(self) -> Telemetry:
        return parse_server_timing(self.headers[b"server-timing"].decode())


def http_scope(path: str) -> Scope:
    return {"type": "http", "method": "GET", "path": path, "headers": []}


async def respond(send: Send, body: bytes = b"ok") -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"a", b"1")]})
    await send({"type": "http.response.body", "body": body})


def test_asgi_cpu_is_per_request_while_four_requests_interleave() -> None:
    designed_ms = {"/t0": 10.0, "/t1": 20.0, "/t2": 30.0, "/t3": 40.0}
    order: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        for _ in range(10):  # ten slices, each followed by a switch to the other requests
            burn_cpu(designed_ms[scope["path"]] / 10)
            order.append(scope["path"])
            await asyncio.sleep(0)
            counters.db_read(int(scope["path"][-1]) + 1)  # isolated per request (task)
        await respond(send)
        burn_cpu(20)  # after the response started: not charged

    async def main() -> dict[str, ASGIRecorder]:
        wrapped = ASGIMiddleware(app, replica="a-1")
        servers = {path: ASGIRecorder() for path in designed_ms}
        calls = [wrapped(http_scope(p), s.receive, s.send) for p, s in servers.items()]
        await asyncio.gather(*calls)
        return servers

    servers = asyncio.run(main())
    assert order[:8] == ["/t0", "/t1", "/t2", "/t3"] * 2  # the requests really interleaved
    for path, server in servers.items():
        cpu = server.telemetry.cpu_ms
        assert cpu is not None and abs(cpu - designed_ms[path]) <= 0.15 * designed_ms[path], path
        assert server.telemetry.db_reads == 10 * (int(path[-1]) + 1)
        assert server.headers[b"x-served-by"] == b"a-1"
        assert server.headers[b"a"] == b"1"
        assert server.messages[1] == {"type": "http.response.body", "body": b"ok"}


def test_asgi_passes_other_scopes_through_untouched() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope["type"], send))
        counters.db_read()  # outside an HTTP request: a no-op

    server = ASGIRecorder()
    asyncio.run(ASGIMiddleware(app, replica="a")({"type": "lifespan"}, server.receive, server.send))
    assert seen == [("lifespan", server.send)]


def test_asgi_errors_and_cancellation_reach_the_caller() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0)
        raise ValueError("app bug")

    async def main() -> None:
        server = ASGIRecorder()
        with pytest.raises(ValueError, match="app bug"):
            await ASGIMiddleware(failing, replica="a")(http_scope("/"), server.receive, server.send)

        ready = asyncio.Event()

        async def hanging(scope: Scope, receive: Receive, send: Send) -> None:
            ready.set()
            await asyncio.sleep(60)

        wrapped = ASGIMiddleware(hanging, replica="a")
        task = asyncio.create_task(wrapped(http_scope("/"), server.receive, server.send))
        await ready.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
