"""WSGI middleware: per-request thread CPU and counters in ``Server-Timing``, plus ``X-Served-By``.

CPU is ``time.thread_time_ns()`` of the server thread from the call into the app until the
response headers go out. Headers must precede the body, so what is charged depends on what
the app returns:

* a list or tuple (the body already in memory): everything the app did, body included;
* any other iterable (a generator, a streaming body): the app call plus producing the first
  non-empty chunk; CPU spent producing the later chunks is not charged;
* ``write()`` (the legacy imperative API) or ``wsgi.file_wrapper``: up to that point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from time import thread_time_ns
from typing import TYPE_CHECKING

from harness.instrument.counters import RequestCounters, _current
from harness.instrument.environment import default_replica, pyroscope_tag_wrapper

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from _typeshed import OptExcInfo

__all__ = ["WSGIMiddleware"]

Write = Callable[[bytes], object]


class WSGIMiddleware:
    """Wrap a WSGI app so each response reports its CPU time and counters."""

    __slots__ = ("_app", "_served_by", "_tag")

    def __init__(self, app: WSGIApplication, replica: str | None = None) -> None:
        self._app = app
        replica = replica or default_replica()
        self._served_by = ("X-Served-By", replica)
        self._tag = pyroscope_tag_wrapper(replica)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._tag is None:
            return self._handle(environ, start_response)
        # The harness names each request's endpoint (its scenario name, e.g. a route template);
        # other clients get the raw method and path.
        endpoint = environ.get("HTTP_X_HARNESS_ENDPOINT") or (
            f"{environ.get('REQUEST_METHOD', '')} {environ.get('PATH_INFO', '')}")
        with self._tag({"endpoint": endpoint}):
            return self._handle(environ, start_response)

    def _handle(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        call = _Call(start_response, self._served_by)
        token = _current.set(call.counters)
        try:
            result = self._app(environ, call.start_response)
            if isinstance(result, list | tuple) or _is_file_wrapper(environ, result):
                call.send_headers()
                return result
            return call.stream(result)
        finally:
            _current.reset(token)


def _is_file_wrapper(environ: WSGIEnvironment, result: Iterable[bytes]) -> bool:
    """True for the server's ``wsgi.file_wrapper`` objects, which it sends specially."""
    wrapper = environ.get("wsgi.file_wrapper")
    return isinstance(wrapper, type) and isinstance(result, wrapper)


class _Call:
    """One request in flight: defers the app's ``start_response`` until CPU is known."""

    __slots__ = (
        "counters",
        "cpu_start",
        "exc_info",
        "headers",
        "served_by",
        "server_start_response",
        "status",
        "write",
    )

    def __init__(self, start_response: StartResponse, served_by: tuple[str, str]) -> None:
        self.server_start_response = start_response
        self.served_by = served_by
        self.counters = RequestCounters()
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.exc_info: OptExcInfo | None = None
        self.write: Write | None = None  # the server's write(), once headers went out
        self.cpu_start = thread_time_ns()

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Write:
        error = exc_info[1] if exc_info is not None else None
        if error is not None and self.write is not None:
            raise error  # PEP 3333: the headers already went out, re-raise
        self.status, self.headers, self.exc_info = status, headers, exc_info
        return self._write

    def _write(self, data: bytes) -> None:
        write = self.send_headers()
        if write is not None:  # always: _write is only handed out by start_response
            write(data)

    def send_headers(self) -> Write | None:
        """Call the server's ``start_response`` once, adding our headers; its ``write``."""
        if self.write is None and self.status is not None:
            cpu_ns = thread_time_ns() - self.cpu_start
            timing = ("Server-Timing", self.counters.server_timing(cpu_ns))
            headers = [*self.headers, timing, self.served_by]  # the app may reuse its list
            self.write = self.server_start_response(self.status, headers, self.exc_info)
        return self.write

    def stream(self, result: Iterable[bytes]) -> Iterable[bytes]:
        """Produce the first non-empty chunk (apps may call start_response only then)."""
        iterator = iter(result)
        first = b""
        try:
            for chunk in iterator:
                if chunk:
                    first = chunk
                    break
        except BaseException:
            _close(result)
            raise
        self.send_headers()
        return _Body(first, iterator, result)


class _Body:
    """The rest of a streamed response; ``close()`` reaches the app's iterable (PEP 3333)."""

    __slots__ = ("_first", "_iterator", "_result")

    def __init__(self, first: bytes, iterator: Iterator[bytes], result: Iterable[bytes]) -> None:
        self._first = first
        self._iterator = iterator
        self._result = result

    def __iter__(self) -> Iterator[bytes]:
        if self._first:
            yield self._first
        yield from self._iterator

    def close(self) -> None:
        _close(self._result)


def _close(result: Iterable[bytes]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()
