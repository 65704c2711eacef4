"""Serve a WSGI app with waitress on a shared (SO_REUSEPORT) port until SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import socket
from types import FrameType
from typing import TYPE_CHECKING, Any

from harness.errors import TargetError

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

__all__ = ["serve_wsgi"]

# Generous for load tests: waitress stops accepting above connection_limit (default 100).
_CONNECTION_LIMIT = 1000
_BACKLOG = 1024


def serve_wsgi(app: WSGIApplication, port: int | None = None, threads: int = 8) -> None:
    """Serve *app* on ``HARNESS_BIND_HOST`` (default 127.0.0.1) and *port* (default ``PORT``).

    The socket has SO_REUSEPORT, so several replicas may listen on one port and the kernel
    spreads new connections over them. Returns once SIGTERM or SIGINT stopped the server;
    raises :class:`TargetError` when the port is missing, invalid or cannot be bound.
    """
    import waitress  # only WSGI services need waitress

    from harness.instrument.control import ControlWatcher, start_control_watcher

    host = os.environ.get("HARNESS_BIND_HOST") or "127.0.0.1"
    sock = _listen_socket(host, _port(port))
    socket_map: dict[int, Any] = {}
    previous: dict[int, Any] = {}
    watcher: ControlWatcher | None = None
    try:
        server = waitress.create_server(
            app,
            map=socket_map,
            sockets=[sock],
            threads=threads,
            ident="",  # no Server header
            connection_limit=_CONNECTION_LIMIT,
            backlog=_BACKLOG,
            asyncore_use_poll=True,  # select() fails above 1024 descriptors
        )
        for stop in (signal.SIGTERM, signal.SIGINT):
            previous[stop] = signal.signal(stop, _exit)
        watcher = start_control_watcher()
        server.run()  # returns on SystemExit after stopping the worker threads
    finally:
        if watcher is not None:
            watcher.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _close_all(socket_map)
        sock.close()


def _exit(signum: int, frame: FrameType | None) -> None:
    """Signal handler: waitress's loop stops its threads and returns on SystemExit."""
    raise SystemExit(0)


def _port(port: int | None) -> int:
    if port is None:
        raw = os.environ.get("PORT", "")
        if not raw.isdigit():
            raise TargetError(f"PORT must be set to a port number, got {raw!r}")
        port = int(raw)
    if not 0 <= port <= 65535:
        raise TargetError(f"port {port} is outside 0..65535")
    return port


def _listen_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise TargetError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _close_all(socket_map: dict[int, Any]) -> None:
    """Close the listening and client channels waitress registered in *socket_map*."""
    for channel in list(socket_map.values()):
        try:
            channel.close()
        except OSError:
            pass  # already closed by the peer
    socket_map.clear()
