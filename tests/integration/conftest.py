"""Fixtures that run the real sample system on 127.0.0.1: Valkey, PostgreSQL, payments, shop.

Every process runs in its own session through the local runtime's ``ChildProcess`` and is
stopped (its whole group) in ``finally``; data dirs are removed. Ports are free ports.

* ``valkey``, ``postgres`` — session-scoped :class:`Backing` servers (``.url``, ``.stats()``).
* ``payments`` — a session-scoped payments stand-in, reset to its defaults after each test.
* ``start_shop(**env)`` / ``start_shop.many(env, ...)`` — shops wired to the three above,
  stopped after the test.
* ``backing_runner`` — :func:`run_backing` itself, to start a private server in a test;
  ``free_port`` — a port nothing listens on.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from harness.stack.backing import BackingKind, is_ready, launch_spec, server_stats
from harness.stack.process import ChildProcess, run_init

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
PAYMENTS_DEFAULTS = {"latency_ms": 2, "jitter_ms": 1, "fail_rate": 0, "mode": "ok"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(ready: Callable[[], bool], proc: ChildProcess, what: str) -> None:
    """Poll ``ready`` until it holds; fail with the process's last lines if it exits first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if proc.exit_code() is not None:
            pytest.fail(f"{what} exited with {proc.exit_code()}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready after {START_TIMEOUT_S}s:\n{proc.tail()}")
        time.sleep(0.05)


@dataclass
class Backing:
    kind: BackingKind
    port: int
    url: str
    data_dir: Path
    proc: ChildProcess

    def stats(self) -> dict[str, int]:
        return server_stats(self.kind, self.port)


@contextmanager
def run_backing(
    kind: BackingKind, workdir: Path, data_root: Path | None = None
) -> Iterator[Backing]:
    """Launch ``kind`` exactly as the local runtime does; stop it and remove its data dir.

    The data dir lives in ``data_root`` or, by default, in a fresh ``mkdtemp`` dir as the local
    runtime's do — not under pytest's basetemp, which pytest makes 0700 again whenever another
    pytest session starts, locking the unprivileged PostgreSQL user out mid-test.
    """
    root = data_root or Path(tempfile.mkdtemp(prefix=f"harness-test-{kind}-"))
    port, data_dir = free_port(), root / "data"
    proc: ChildProcess | None = None
    try:
        spec = launch_spec(kind, port, data_dir)
        env = {**os.environ, **spec.env}
        for step in spec.init:
            run_init(kind, step, env, timeout=START_TIMEOUT_S)
        proc = ChildProcess(kind, spec.argv, env, workdir / f"{kind}.log", spec.stop_signal)
        wait_until(lambda: is_ready(kind, port), proc, kind)
        yield Backing(kind, port, spec.url, data_dir, proc)
    finally:
        if proc is not None:
            proc.stop()
        shutil.rmtree(data_dir if data_root else root, ignore_errors=True)


@dataclass
class Service:
    name: str
    port: int
    proc: ChildProcess
    http: requests.Session

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return self.http.get(self.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, json: object) -> requests.Response:
        return self.http.post(self.url + path, json=json, timeout=30)

    def stop(self) -> None:
        self.http.close()
        self.proc.stop()


def launch_service(module: str, env: dict[str, str], workdir: Path, name: str) -> Service:
    """Start ``python -m module`` on a free port without waiting for it."""
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "PORT": str(port),
                "HARNESS_REPLICA": name, **env}  # fmt: skip
    proc = ChildProcess(name, [sys.executable, "-m", module], full_env, workdir / f"{name}.log")
    return Service(name, port, proc, requests.Session())


def wait_healthy(service: Service) -> None:
    wait_until(lambda: _healthy(service), service.proc, service.name)


def start_service(module: str, env: dict[str, str], workdir: Path, name: str) -> Service:
    """``python -m module`` on a free port, returned once ``GET /health`` answers 200."""
    service = launch_service(module, env, workdir, name)
    try:
        wait_healthy(service)
    except BaseException:
        service.stop()
        raise
    return service


def _healthy(service: Service) -> bool:
    try:
        return service.http.get(service.url + "/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(name="free_port")
def free_port_fixture() -> int:
    return free_port()


@pytest.fixture
def backing_runner() -> Callable[..., AbstractContextManager[Backing]]:
    return run_backing


@pytest.fixture(scope="session")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backing]:
    with run_backing("valkey", tmp_path_factory.mktemp("valkey")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backing]:
    with run_backing("postgres", tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(scope="session")
def payments_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    env = {f"PAYMENTS_{k.upper()}": str(v) for k, v in PAYMENTS_DEFAULTS.items()}
    service = start_service("targets.payments", env, tmp_path_factory.mktemp("payments"),
                            "payments-0")  # fmt: skip
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def payments(payments_server: Service) -> Iterator[Service]:
    try:
        yield payments_server
    finally:
        payments_server.post("/control", PAYMENTS_DEFAULTS).raise_for_status()


class ShopLauncher:
    """Starts shops wired to the session's backing services; ``stop_all`` in teardown."""

    def __init__(self, base_env: dict[str, str], cache_url: str, workdir: Path) -> None:
        self._base_env, self._cache_url, self._workdir = base_env, cache_url, workdir
        self.started: list[Service] = []

    def __call__(self, **env: str) -> Service:
        """``start_shop(SHOP_CACHE="on", ...)``: one shop, once healthy."""
        return self.many(env)[0]

    def many(self, *envs: dict[str, str]) -> list[Service]:
        """Several shops started side by side (faster on 2 cores than one after another)."""
        services = []
        for env in envs:
            full = {**self._base_env, **env}
            if full.get("SHOP_CACHE") == "on":
                full.setdefault("SHOP_CACHE_URL", self._cache_url)
            name = f"shop-{len(self.started)}"
            self.started.append(launch_service("targets.shop", full, self._workdir, name))
            services.append(self.started[-1])
        for service in services:
            wait_healthy(service)
        return services

    def stop_all(self) -> None:
        for service in self.started:
            service.stop()


@pytest.fixture
def start_shop(
    valkey: Backing, postgres: Backing, payments: Service, tmp_path: Path
) -> Iterator[ShopLauncher]:
    """A :class:`ShopLauncher` on the session's Valkey, PostgreSQL and payments."""
    base = {"SHOP_DB_URL": postgres.url, "SHOP_PAYMENTS_URL": payments.url,
            "SHOP_PRODUCTS": "5000"}  # fmt: skip
    launcher = ShopLauncher(base, valkey.url, tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()
