"""Traffic only goes to 127.0.0.1 / ::1 (and containers' ports published there) unless the user
names a host with ``--allow-remote HOST``. Enforced at the socket: a locustfile's absolute URL or
a misconfigured target cannot send load anywhere else."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

_state: dict[str, Any] = {"allowed": set()}


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host == "localhost"


def check_address(address: Any) -> None:
    """Raise ConnectionRefusedError for an IP address that is neither loopback nor allowed."""
    if isinstance(address, tuple) and address:
        host = str(address[0])
        if not is_loopback(host) and host not in _state["allowed"]:
            raise ConnectionRefusedError(
                f"cost-harness refuses to connect to {host}: traffic only goes to "
                f"127.0.0.1/::1 unless you pass --allow-remote {host}")


def _allowed(hosts: Iterable[str]) -> set[str]:
    names = set(hosts)
    ips: set[str] = set()
    for host in names:
        try:
            ips |= {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
        except OSError:
            continue
    return names | ips


def install_connect_guard(allow_remote: Iterable[str] = ()) -> None:
    """Check every ``connect``/``connect_ex`` of the (gevent-patched) socket class."""
    _state["allowed"] = _allowed(allow_remote)
    if "connect" in _state:
        return
    cls = socket.socket
    original, original_ex = cls.connect, cls.connect_ex
    _state.update(cls=cls, connect=original, connect_ex=original_ex)

    def connect(self: socket.socket, address: Any) -> None:
        check_address(address)
        original(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check_address(address)
        return original_ex(self, address)

    setattr(cls, "connect", connect)  # noqa: B010 - patching the socket class
    setattr(cls, "connect_ex", connect_ex)  # noqa: B010


def uninstall_connect_guard() -> None:
    if "connect" in _state:
        cls = _state.pop("cls")
        setattr(cls, "connect", _state.pop("connect"))  # noqa: B010
        setattr(cls, "connect_ex", _state.pop("connect_ex"))  # noqa: B010
    _state["allowed"] = set()
