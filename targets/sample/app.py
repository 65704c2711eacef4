"""Endpoints whose cost is known by design, so the harness's numbers can be checked.

=================  =====================================================================
``GET /health``    200 ``ok``; not counted in ``/stats``
``GET /cheap``     a ~100-byte JSON document, almost no CPU
``GET /cpu?ms=20`` burns ``ms × SAMPLE_CPU_FACTOR`` milliseconds of thread CPU
``GET /big?kb=256`` ``kb`` KiB of deterministic bytes (application/octet-stream)
``GET /alloc?mb=64`` allocates ``mb`` MiB (every page touched), holds it for the request
``POST /echo``     ``{"bytes": <request body length>}``
``GET /stats``     ``{"served": N, "by_path": {...}}``: every request except /stats, /health
=================  =====================================================================

With ``SAMPLE_STATS_FILE`` set, the same JSON is written to that file when the service stops.

Unknown paths answer 404 JSON (counted under ``"(unknown)"``), bad parameters 400 JSON.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from time import thread_time_ns
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from harness.errors import TargetError

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

MAX_CPU_MS = 10_000.0
MAX_KB = 64 * 1024
MAX_ALLOC_MB = 1024
_PAGE = 4096
_BLOCK = bytes(range(256)) * 4  # 1 KiB
_CHUNK = 64 * 1024
_CHEAP = {  # about 100 bytes of JSON
    "item": 42,
    "name": "cheap",
    "price_cents": 199,
    "currency": "EUR",
    "in_stock": True,
    "tags": ["sample", "cheap"],
}

Response = tuple[str, str, bytes]  # status, content type, body
Handler = Callable[["WSGIEnvironment"], Response]


class BadRequest(ValueError):
    """A query parameter is missing its bounds or not a number (answered with 400)."""


def cpu_factor_from_env() -> float:
    """``SAMPLE_CPU_FACTOR`` (default 1.0): multiplies the CPU burnt by ``/cpu``."""
    raw = os.environ.get("SAMPLE_CPU_FACTOR", "1.0")
    try:
        factor = float(raw)
    except ValueError:
        factor = -1.0
    if not 0 < factor <= 100:
        raise TargetError(f"SAMPLE_CPU_FACTOR must be a number in (0, 100], got {raw!r}")
    return factor


def burn_cpu(ms: float) -> None:
    """Spin until this thread's CPU clock advanced by *ms* milliseconds."""
    deadline = thread_time_ns() + int(ms * 1e6)
    x = 0
    while thread_time_ns() < deadline:
        for i in range(200):
            x = (x * 31 + i) & 0xFFFF


def allocate(mb: int) -> bytearray:
    """``mb`` MiB with one byte of every page written, so all of it is resident."""
    held = bytearray(mb * 2**20)
    held[::_PAGE] = b"\x01" * len(range(0, len(held), _PAGE))
    return held


class SampleApp:
    """The WSGI application. Thread-safe: waitress calls it from several threads."""

    def __init__(self, cpu_factor: float = 1.0) -> None:
        self.cpu_factor = cpu_factor
        self._lock = threading.Lock()
        self._served = 0
        self._by_path: dict[str, int] = {}
        self._routes: dict[tuple[str, str], Handler] = {
            ("GET", "/health"): lambda environ: ("200 OK", "text/plain", b"ok"),
            ("GET", "/cheap"): self._cheap,
            ("GET", "/cpu"): self._cpu,
            ("GET", "/big"): self._big,
            ("GET", "/alloc"): self._alloc,
            ("POST", "/echo"): self._echo,
            ("GET", "/stats"): self._stats,
        }
        self._paths = {path for _, path in self._routes}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        self._count(path)
        handler = self._routes.get((method, path))
        if handler is None:
            response = _not_found(method, path, path in self._paths)
        else:
            try:
                response = handler(environ)
            except BadRequest as exc:
                response = _json("400 Bad Request", {"error": str(exc)})
        status, content_type, body = response
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        start_response(status, headers)
        return [body]

    def _count(self, path: str) -> None:
        if path in ("/stats", "/health"):
            return
        key = path if path in self._paths else "(unknown)"
        with self._lock:
            self._served += 1
            self._by_path[key] = self._by_path.get(key, 0) + 1

    def _cheap(self, environ: WSGIEnvironment) -> Response:
        return _json("200 OK", _CHEAP)

    def _cpu(self, environ: WSGIEnvironment) -> Response:
        ms = _query_number(environ, "ms", 20.0, MAX_CPU_MS)
        burn_cpu(ms * self.cpu_factor)
        return _json("200 OK", {"burnt_ms": round(ms * self.cpu_factor, 3)})

    def _big(self, environ: WSGIEnvironment) -> Response:
        kb = int(_query_number(environ, "kb", 256, MAX_KB))
        return "200 OK", "application/octet-stream", _BLOCK * kb

    def _alloc(self, environ: WSGIEnvironment) -> Response:
        """Resident memory on demand: under a container memory limit, enough ``mb`` gets the
        replica OOM-killed (the docker runtime's crash tests)."""
        mb = int(_query_number(environ, "mb", 64, MAX_ALLOC_MB))
        held = allocate(mb)
        return _json("200 OK", {"allocated_mb": len(held) // 2**20})

    def _echo(self, environ: WSGIEnvironment) -> Response:
        remaining = _content_length(environ)
        stream = environ["wsgi.input"]
        received = 0
        while remaining > 0:
            chunk = stream.read(min(remaining, _CHUNK))
            if not chunk:
                break
            received += len(chunk)
            remaining -= len(chunk)
        return _json("200 OK", {"bytes": received})

    def _stats(self, environ: WSGIEnvironment) -> Response:
        return _json("200 OK", self.stats())

    def stats(self) -> dict[str, object]:
        """``{"served": N, "by_path": {...}}``, as ``GET /stats`` answers."""
        with self._lock:
            return {"served": self._served, "by_path": dict(self._by_path)}

    def write_stats(self, path: Path) -> None:
        """Write :meth:`stats` to *path* atomically (the harness reads it after a run)."""
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.stats()), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            raise TargetError(f"cannot write SAMPLE_STATS_FILE {path}: {exc.strerror}") from exc


def _json(status: str, document: object) -> Response:
    return status, "application/json", json.dumps(document, separators=(",", ":")).encode()


def _not_found(method: str, path: str, known_path: bool) -> Response:
    if known_path:
        return _json("405 Method Not Allowed", {"error": f"{method} not allowed on {path}"})
    return _json("404 Not Found", {"error": f"no such path: {path}"})


def _query_number(environ: WSGIEnvironment, name: str, default: float, maximum: float) -> float:
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    if not values:
        return default
    try:
        number = float(values[-1])
    except ValueError:
        raise BadRequest(f"{name} must be a number, got {values[-1]!r}") from None
    if not 0 <= number <= maximum:
        raise BadRequest(f"{name} must be within 0..{maximum:g}, got {values[-1]!r}")
    return number


def _content_length(environ: WSGIEnvironment) -> int:
    raw = environ.get("CONTENT_LENGTH") or "0"
    if not raw.isdigit():
        raise BadRequest(f"Content-Length must be a number, got {raw!r}")
    return int(raw)
