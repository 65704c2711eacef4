"""The embedded fault proxy: a Toxiproxy-compatible TCP/HTTP fault proxy in its own process.

The kernel here has no ``netem``, so latency, bandwidth, loss-like and HTTP error faults are
made by a proxy between a service and its dependency. The proxy runs as a separate process
(asyncio, no gevent), started and stopped by the harness::

    with start_proxy_process(run_dir / "logs" / "fault-proxy.log") as proxy:
        client = proxy.client()
        payments = client.create_proxy("payments", upstream="127.0.0.1:8001")
        # start the shop with its payments URL pointing at payments.listen, then:
        client.add_toxic("payments", "latency", {"latency": 200, "jitter": 20})
        client.remove_toxic("payments", "latency_downstream")

The same :class:`ToxiproxyClient` talks to a real Toxiproxy (``toxiproxy://HOST:PORT``).
Process side: ``python -m harness.faults.proxy --api-port 8474`` serves the API on 127.0.0.1
until SIGTERM or SIGINT, or until its parent process dies (``--parent-pid``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import TracebackType

from harness.errors import FaultError, TargetError
from harness.faults.proxy_api import VERSION, start_api
from harness.faults.proxy_client import ProxyInfo, ToxicInfo, ToxiproxyClient
from harness.faults.proxy_server import Address, FaultProxy
from harness.faults.toxics import ApiProblem
from harness.stack.process import ChildProcess
from harness.util import atomic_write_text

__all__ = ["ProxyInfo", "ProxyProcess", "ToxicInfo", "ToxiproxyClient", "main",
           "start_proxy_process"]

log = logging.getLogger("harness.faults.proxy")
START_TIMEOUT_S = 10.0
PARENT_POLL_S = 0.5


class ProxyProcess:
    """A running proxy process the harness owns; ``stop()`` is idempotent and never raises."""

    def __init__(self, child: ChildProcess, api_url: str) -> None:
        self.child = child
        self.api_url = api_url

    @property
    def pid(self) -> int:
        return self.child.pid

    def client(self, timeout_s: float = 5.0) -> ToxiproxyClient:
        return ToxiproxyClient(self.api_url, timeout_s)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited after a grace period."""
        self.child.stop()

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_proxy_process(log_path: Path, timeout_s: float = START_TIMEOUT_S,
                        seed: int | None = None) -> ProxyProcess:
    """Start ``python -m harness.faults.proxy`` on a free loopback port; return once its API
    answers ``/version``. Its output goes to ``log_path``. Raises FaultError."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    port_file = log_path.with_name(f".{log_path.name}.port")
    port_file.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "harness.faults.proxy", "--api-port", "0",
            "--port-file", str(port_file), "--parent-pid", str(os.getpid())]
    if seed is not None:
        argv += ["--seed", str(seed)]
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    try:
        child = ChildProcess("fault-proxy", argv, env, log_path)
    except TargetError as exc:
        raise FaultError(f"cannot start the fault proxy: {exc}") from exc
    try:
        api_url = _wait_until_serving(child, port_file, time.monotonic() + timeout_s)
    except BaseException:
        child.stop()
        raise
    finally:
        port_file.unlink(missing_ok=True)
    return ProxyProcess(child, api_url)


def _wait_until_serving(child: ChildProcess, port_file: Path, deadline: float) -> str:
    while True:
        if child.exit_code() is not None:
            raise FaultError(f"the fault proxy exited with {child.exit_code()} at start:\n"
                             f"{child.tail()}")
        port = port_file.read_text().strip() if port_file.exists() else ""
        if port.isdigit():
            api_url = f"http://127.0.0.1:{port}"
            try:
                ToxiproxyClient(api_url, timeout_s=1.0).version()
                return api_url
            except FaultError:
                pass
        if time.monotonic() > deadline:
            raise FaultError(f"the fault proxy did not answer within the start timeout:\n"
                             f"{child.tail()}")
        time.sleep(0.02)


async def serve(api_host: str, api_port: int, port_file: Path | None = None,
                parent_pid: int | None = None, seed: int | None = None) -> None:
    """Serve the API and the proxies until SIGTERM/SIGINT or the parent's death."""
    fault_proxy = FaultProxy(seed)
    api = await start_api(fault_proxy, api_host, api_port)
    port = int(api.sockets[0].getsockname()[1])
    log.info("%s: API on http://%s", VERSION, Address(api_host, port))
    if port_file is not None:
        atomic_write_text(port_file, f"{port}\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch_parent(parent_pid, stop)) if parent_pid else None
    try:
        await stop.wait()
    finally:
        api.close()
        await fault_proxy.close()
        if watcher is not None:
            watcher.cancel()
    log.info("stopped")


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    """Stop when the harness that started us is gone (we were re-parented)."""
    while os.getppid() == parent_pid:
        await asyncio.sleep(PARENT_POLL_S)
    log.warning("parent process %d is gone; stopping", parent_pid)
    stop.set()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.faults.proxy",
                                     description="Toxiproxy-compatible fault proxy")
    parser.add_argument("--api-host", default="127.0.0.1", help="loopback address of the API")
    parser.add_argument("--api-port", type=int, default=8474, help="0: the kernel picks")
    parser.add_argument("--port-file", type=Path, help="write the API port here once serving")
    parser.add_argument("--parent-pid", type=int, help="stop when this process is gone")
    parser.add_argument("--seed", type=int, help="seed of toxicity and jitter draws")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        api = Address.parse(f"{args.api_host}:{args.api_port}", "--api-host/--api-port", True)
        asyncio.run(serve(api.host, api.port, args.port_file, args.parent_pid, args.seed))
    except ApiProblem as problem:
        log.error("%s", problem.message)
        return 2
    except OSError as exc:
        log.error("cannot serve the API on %s:%s: %s", args.api_host, args.api_port,
                  exc.strerror or exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
