"""The proxies of the embedded fault proxy: listeners on loopback, their links and toxics.

:class:`FaultProxy` is the state behind the Toxiproxy-compatible API
(:mod:`harness.faults.proxy_api`); every method runs on the process's one asyncio loop, so
no locks are needed. Errors meant for API callers are :class:`ApiProblem` with the status
Toxiproxy would answer (404 unknown, 409 duplicate, 400 bad input).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from dataclasses import dataclass
from typing import Any

from harness.faults.proxy_link import Conn, Link, ProxyStats
from harness.faults.toxics import ApiProblem, Stream, Toxic

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 5.0
STOP_WAIT_S = 1.0


@dataclass(frozen=True)
class Address:
    """A loopback ``HOST:PORT`` (the proxy never listens on, nor connects to, anything else)."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, what: str, listen: bool) -> Address:
        host, colon, port = text.rpartition(":")
        if not colon or not port.isdigit() or int(port) > 65535 or (not listen and port == "0"):
            raise ApiProblem(400, f"{what}: expected HOST:PORT, got {text!r}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not _is_loopback(host):
            raise ApiProblem(400, f"{what}: only loopback addresses (127.0.0.1, ::1, localhost) "
                                  f"are allowed, got {text!r}")
        if listen and host == "localhost":
            host = "127.0.0.1"
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Proxy:
    """One named proxy: a listener that links each client to the upstream."""

    def __init__(self, name: str, listen: Address, upstream: Address, rng: random.Random) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.rng = rng
        self.stats = ProxyStats()
        self.toxics: list[Toxic] = []
        self._server: asyncio.Server | None = None
        self._links: set[Link] = set()

    @property
    def enabled(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Listen; a port 0 becomes the real port, which later restarts reuse."""
        if self._server is not None:
            return
        try:
            self._server = await asyncio.start_server(
                self._on_client, self.listen.host, self.listen.port, reuse_address=True)
        except OSError as exc:
            raise ApiProblem(409, f"proxy {self.name}: cannot listen on {self.listen}: "
                                  f"{exc.strerror or exc}") from exc
        port = self._server.sockets[0].getsockname()[1]
        self.listen = Address(self.listen.host, int(port))
        log.info("proxy %s listening on %s -> %s", self.name, self.listen, self.upstream)

    async def stop(self) -> None:
        """Stop listening (new connections are refused) and close every open link."""
        if self._server is not None:
            self._server.close()
            self._server = None
            log.info("proxy %s stopped", self.name)
        links = list(self._links)
        for link in links:
            link.close()
        if links:
            await asyncio.wait([asyncio.create_task(link.wait_closed()) for link in links],
                               timeout=STOP_WAIT_S)

    def toxics_for(self, stream: Stream) -> list[Toxic]:
        return [toxic for toxic in self.toxics if toxic.stream == stream]

    def has_toxic(self, uid: int) -> bool:
        return any(toxic.uid == uid for toxic in self.toxics)

    def toxic(self, name: str) -> Toxic:
        for toxic in self.toxics:
            if toxic.name == name:
                return toxic
        raise ApiProblem(404, f"toxic not found: {name!r} on proxy {self.name!r}")

    def add_toxic(self, toxic: Toxic) -> None:
        if any(t.name == toxic.name for t in self.toxics):
            raise ApiProblem(409, f"toxic already exists: {toxic.name!r} on proxy {self.name!r}")
        self.toxics.append(toxic)
        self._toxics_changed(f"added {toxic.type} toxic {toxic.name}")

    def replace_toxic(self, old: Toxic, new: Toxic) -> None:
        self.toxics[self.toxics.index(old)] = new
        self._toxics_changed(f"updated toxic {new.name}")

    def remove_toxic(self, name: str) -> None:
        self.toxics.remove(self.toxic(name))
        self._toxics_changed(f"removed toxic {name}")

    def remove_all_toxics(self) -> None:
        if self.toxics:
            self.toxics.clear()
            self._toxics_changed("removed all toxics")

    def _toxics_changed(self, what: str) -> None:
        log.info("proxy %s: %s", self.name, what)
        for link in self._links:
            link.refresh_toxics()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "listen": str(self.listen), "upstream": str(self.upstream),
                "enabled": self.enabled, "toxics": [t.to_json() for t in self.toxics],
                "stats": self.stats.to_json()}

    async def _on_client(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        upstream = await self._connect_upstream()
        if upstream is None or not self.enabled:
            writer.close()
            if upstream is not None:
                upstream[1].close()
            return
        link = Link(self, (reader, writer), upstream)
        self._links.add(link)
        self.stats.active_connections += 1
        try:
            await link.run()
        finally:
            self._links.discard(link)
            self.stats.active_connections -= 1

    async def _connect_upstream(self) -> Conn | None:
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(self.upstream.host, self.upstream.port),
                CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            self.stats.upstream_errors += 1
            log.warning("proxy %s: upstream %s unreachable: %s", self.name, self.upstream,
                        exc or type(exc).__name__)
            return None


class FaultProxy:
    """All proxies of one proxy process, by name."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.proxies: dict[str, Proxy] = {}

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ApiProblem(404, f"proxy not found: {name!r}")
        return proxy

    async def create(self, name: str, listen: Address, upstream: Address,
                     enabled: bool) -> Proxy:
        if name in self.proxies:
            raise ApiProblem(409, f"proxy already exists: {name!r}")
        proxy = Proxy(name, listen, upstream, self.rng)
        self.proxies[name] = proxy  # taken before the await, so a racing create gets 409
        if enabled:
            try:
                await proxy.start()
            except ApiProblem:
                del self.proxies[name]
                raise
        return proxy

    async def update(self, proxy: Proxy, listen: Address, upstream: Address,
                     enabled: bool) -> None:
        """Toxiproxy semantics: a new address restarts the proxy; ``enabled`` starts or
        stops it (stopping closes its open connections: the "down" fault)."""
        if (listen, upstream) != (proxy.listen, proxy.upstream):
            await proxy.stop()
            proxy.listen, proxy.upstream = listen, upstream
        if enabled:
            await proxy.start()
        else:
            await proxy.stop()

    async def delete(self, name: str) -> None:
        proxy = self.get(name)
        del self.proxies[name]
        await proxy.stop()

    async def reset(self) -> None:
        """Remove every toxic and enable every proxy."""
        for proxy in list(self.proxies.values()):
            proxy.remove_all_toxics()
            await proxy.start()

    async def close(self) -> None:
        for proxy in list(self.proxies.values()):
            await proxy.stop()
