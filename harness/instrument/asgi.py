"""ASGI middleware: per-request CPU and counters in ``Server-Timing``, plus ``X-Served-By``.

Many requests share one thread in asyncio, so a thread-CPU delta over the whole request
would charge each request for every other request that ran meanwhile. Instead the
middleware drives the app's coroutine through :class:`_Request`, an awaitable that forwards
each step (``send``/``throw`` from the event loop) and adds ``time.thread_time_ns()`` of
exactly that step. A request is therefore charged only while its own code runs, whatever it
awaits in between (I/O, ``asyncio.sleep``, locks).

Limits (see docs/telemetry.md): the headers leave with ``http.response.start``, so CPU is
counted up to that message; work the handler moves into other tasks (``create_task``,
``gather`` of coroutines), thread pools (``run_in_executor``, sync endpoints of Starlette
and FastAPI) or event-loop callbacks (the server's HTTP parsing) is not charged.
Non-HTTP scopes (``lifespan``, ``websocket``) pass through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, MutableMapping
from time import thread_time_ns
from types import TracebackType
from typing import Any, overload

from harness.instrument.counters import RequestCounters, _current
from harness.instrument.environment import default_replica

__all__ = ["ASGIApp", "ASGIMiddleware", "Message", "Receive", "Scope", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ASGIMiddleware:
    """Wrap an ASGI app so each HTTP response reports its CPU time and counters."""

    __slots__ = ("_app", "_served_by")

    def __init__(self, app: ASGIApp, replica: str | None = None) -> None:
        self._app = app
        self._served_by = (b"x-served-by", (replica or default_replica()).encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        counters = RequestCounters()
        token = _current.set(counters)
        try:
            await _Request(self._app, scope, receive, send, counters, self._served_by)
        finally:
            _current.reset(token)


class _Request(Generator[Any, Any, None]):
    """One request in flight: meters each step of the app and adds headers at response start."""

    __slots__ = ("counters", "cpu_ns", "served_by", "server_send", "step", "step_start")

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        counters: RequestCounters,
        served_by: tuple[bytes, bytes],
    ) -> None:
        self.server_send = send
        self.served_by = served_by
        self.counters = counters
        self.cpu_ns = 0
        self.step_start = thread_time_ns()
        self.step = app(scope, receive, self.send_message).__await__()

    def __await__(self) -> Generator[Any, Any, None]:
        return self

    def send(self, value: Any) -> Any:
        start = self.step_start = thread_time_ns()
        try:
            return self.step.send(value)
        finally:
            self.cpu_ns += thread_time_ns() - start

    @overload
    def throw(
        self,
        typ: type[BaseException],
        val: BaseException | object = None,
        tb: TracebackType | None = None,
        /,
    ) -> Any: ...
    @overload
    def throw(
        self, typ: BaseException, val: None = None, tb: TracebackType | None = None, /
    ) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> Any:
        error = val if isinstance(val, BaseException) else typ
        start = self.step_start = thread_time_ns()
        try:
            return self.step.throw(error)
        finally:
            self.cpu_ns += thread_time_ns() - start

    def close(self) -> None:
        self.step.close()

    def send_message(self, message: Message) -> Awaitable[None]:
        """The ``send`` the app sees: adds our headers to ``http.response.start``."""
        if message["type"] == "http.response.start":
            cpu_ns = self.cpu_ns + thread_time_ns() - self.step_start
            timing = (b"server-timing", self.counters.server_timing(cpu_ns).encode("latin-1"))
            headers = [*message.get("headers", ()), timing, self.served_by]
            message = {**message, "headers": headers}
        return self.server_send(message)
