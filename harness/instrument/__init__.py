"""Instrumentation that target services import to report per-request telemetry.

    from harness.instrument import counters, WSGIMiddleware, serve_wsgi
    serve_wsgi(WSGIMiddleware(app))

Responses then carry ``Server-Timing`` (thread CPU and the counters) and ``X-Served-By``;
docs/telemetry.md describes the header for services written in other languages. This
package needs only the standard library (plus waitress for :func:`serve_wsgi`).
"""

from __future__ import annotations

from harness.instrument import counters
from harness.instrument.asgi import ASGIMiddleware
from harness.instrument.logbytes import LogBytesHandler
from harness.instrument.serve import serve_wsgi
from harness.instrument.wsgi import WSGIMiddleware

__all__ = ["ASGIMiddleware", "LogBytesHandler", "WSGIMiddleware", "counters", "serve_wsgi"]
