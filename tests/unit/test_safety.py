"""Traffic only reaches loopback unless a host is allowed explicitly (no packet ever leaves:
refused addresses are checked before connecting, allowed ones are only checked)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from harness.run.safety import (
    check_address,
    install_connect_guard,
    is_loopback,
    uninstall_connect_guard,
)


@pytest.fixture
def guard() -> Iterator[None]:
    install_connect_guard()
    yield
    uninstall_connect_guard()


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("127.3.2.1")
    assert not is_loopback("10.0.0.1") and not is_loopback("192.0.2.10")


def test_guard_refuses_remote_and_allows_loopback(guard: None) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
    with socket.socket() as client, pytest.raises(ConnectionRefusedError, match="--allow-remote"):
        client.connect(("192.0.2.10", 80))  # refused before any packet is sent
    assert client.connect_ex  # the class stays usable


def test_allow_remote_lets_a_named_host_through(guard: None) -> None:
    with pytest.raises(ConnectionRefusedError):
        check_address(("192.0.2.10", 80))
    install_connect_guard(["192.0.2.10"])
    check_address(("192.0.2.10", 80))  # allowed now (checked only; nothing is sent)
    check_address("/var/run/docker.sock")  # unix sockets are never checked
