"""A WSGI service whose calls cost exactly what they are asked to cost.

=====================================================  ========================================
``GET /health``                                        200 ``ok``; not counted
``GET /work?cpu_ms=C&bytes=B&reads=R&writes=W``        R primary-key SELECTs and W INSERTs on
                                                       PostgreSQL, then spins until the handler
                                                       thread's CPU clock advanced by exactly C
                                                       ms since the handler started (the DB
                                                       client work included), and answers
                                                       exactly B bytes
``GET /stats``                                         ``{"served": N, "by_path": {...}}``: calls
                                                       of ``/work`` that passed validation
=====================================================  ========================================

Any path other than ``/health`` and ``/stats`` is served by ``/work``, so a scenario can name
its endpoints freely (``/light``, ``/heavy`` ...) and still put the cost in the query string.
The truth of a call is its query string; the harness's numbers are checked against it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from time import thread_time_ns
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from targets.calibrated.db import Database

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

MAX_CPU_MS = 10_000.0
MAX_BYTES = 64 * 2**20
MAX_OPS = 100
_PATTERN = bytes(range(256)) * 256  # 64 KiB of deterministic bytes


class BadRequest(ValueError):
    """A query parameter is not a number or out of bounds (answered with 400)."""


def burn_until(start_ns: int, cpu_ms: float) -> None:
    """Spin until this thread's CPU clock reads ``start_ns + cpu_ms`` (no-op when past it)."""
    deadline = start_ns + int(cpu_ms * 1e6)
    x = 0
    while thread_time_ns() < deadline:
        for i in range(50):
            x = (x * 31 + i) & 0xFFFF


def body_of(size: int) -> bytes:
    """Exactly ``size`` deterministic bytes."""
    whole, rest = divmod(size, len(_PATTERN))
    return _PATTERN * whole + _PATTERN[:rest]


def number(query: dict[str, list[str]], name: str, maximum: float) -> float:
    """Query parameter ``name`` (default 0) within ``0..maximum``."""
    values = query.get(name)
    if not values:
        return 0.0
    try:
        value = float(values[-1])
    except ValueError:
        raise BadRequest(f"{name} must be a number, got {values[-1]!r}") from None
    if not 0 <= value <= maximum:
        raise BadRequest(f"{name} must be within 0..{maximum:g}, got {values[-1]!r}")
    return value


class CalibratedApp:
    """The WSGI application; thread-safe (waitress calls it from several threads)."""

    def __init__(self, db: Database | None) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._served: dict[str, int] = {}
        self._seed = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = thread_time_ns()
        path = environ.get("PATH_INFO", "/")
        if path == "/health":
            status, kind, body = "200 OK", "text/plain", b"ok"
        elif path == "/stats":
            status, kind, body = "200 OK", "application/json", json.dumps(self.stats()).encode()
        else:
            try:
                body = self.work(path, parse_qs(environ.get("QUERY_STRING", "")), started)
                status, kind = "200 OK", "application/octet-stream"
            except BadRequest as exc:
                status, kind = "400 Bad Request", "application/json"
                body = json.dumps({"error": str(exc)}).encode()
        start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body]

    def work(self, path: str, query: dict[str, list[str]], started: int) -> bytes:
        cpu_ms = number(query, "cpu_ms", MAX_CPU_MS)
        size = int(number(query, "bytes", MAX_BYTES))
        reads = int(number(query, "reads", MAX_OPS))
        writes = int(number(query, "writes", MAX_OPS))
        if (reads or writes) and self.db is None:
            raise BadRequest("reads/writes need CALIBRATED_DB_URL")
        with self._lock:  # count calls that will be served as asked
            self._served[path] = self._served.get(path, 0) + 1
            self._seed += 1
            seed = self._seed
        if self.db is not None and (reads or writes):
            self.db.work(reads, writes, seed)
        body = body_of(size)
        burn_until(started, cpu_ms)
        return body

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {"served": sum(self._served.values()), "by_path": dict(self._served)}
