"""Meters the docker runtime through the Docker Engine API (``GET /containers/ID/stats``).

One streaming stats request per container (the engine pushes a document every second); a
sample is the latest document of each. CPU is the cgroup's cumulative usage, memory is
usage minus inactive file cache (what ``docker stats`` shows), network bytes are summed over
the container's interfaces, block I/O over its devices. A container that stopped or vanished
is ``alive=False`` and keeps its last cumulative counters, so deltas never go negative.

:func:`make_docker_meter` picks :class:`~harness.meter.cgroup.CgroupMeter` (reads the same
counters from cgroup files, much cheaper) when the engine runs on this host.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests

from harness.meter.base import UsageSample
from harness.stack.base import Replica
from harness.stack.compose_engine import connect

NEVER_READ = "0001-01-01T00:00:00Z"
FIRST_DOCUMENT_S = 2.0  # the engine sends a stream's first document at once


@dataclass(frozen=True, slots=True)
class Counters:
    """One reading of a container: cumulative CPU/I/O/network, current memory."""

    cpu_s: float
    rss_bytes: int
    io_read_bytes: int
    io_write_bytes: int
    net_rx_bytes: int | None
    net_tx_bytes: int | None


DEAD = Counters(0.0, 0, 0, 0, None, None)


class CounterBook:
    """Turns readings into samples; a dead replica keeps its last cumulative counters."""

    def __init__(self) -> None:
        self._last: dict[str, Counters] = {}

    def sample(self, rep: Replica, now: float, reading: Counters | None) -> UsageSample:
        last = self._last.get(rep.replica, DEAD)
        alive = reading is not None
        cur = reading or Counters(last.cpu_s, 0, last.io_read_bytes, last.io_write_bytes,
                                  last.net_rx_bytes, last.net_tx_bytes)
        cur = Counters(max(cur.cpu_s, last.cpu_s), cur.rss_bytes,
                       max(cur.io_read_bytes, last.io_read_bytes),
                       max(cur.io_write_bytes, last.io_write_bytes),
                       _max(cur.net_rx_bytes, last.net_rx_bytes),
                       _max(cur.net_tx_bytes, last.net_tx_bytes))
        self._last[rep.replica] = cur
        return UsageSample(now, rep.service, rep.replica, rep.role, cur.cpu_s, cur.rss_bytes,
                           cur.io_read_bytes, cur.io_write_bytes, cur.net_tx_bytes,
                           cur.net_rx_bytes, rep.cpu_limit, rep.mem_limit, alive)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


class DockerMeter:
    """Samples every replica that has a container id, through the Docker Engine API.

    The engine answers a single stats request only after its next collection tick (up to a
    second; this engine ignores ``one-shot``), so each container gets one streaming stats
    request read by a daemon thread, as ``docker stats`` does; ``sample`` returns the latest
    documents at once. A stream ends when its container stops or is removed.
    """

    def __init__(self, replicas: Callable[[], list[Replica]],
                 client: docker.DockerClient | None = None) -> None:
        self._replicas = replicas
        self._client = client
        self._book = CounterBook()
        self._streams: dict[str, _StatsStream] = {}

    def sample(self) -> list[UsageSample]:
        now = time.time()
        return [self._book.sample(rep, now, self.read(rep.container_id))
                for rep in self._replicas()]

    def read(self, container_id: str | None) -> Counters | None:
        """One container's latest counters, or None when it is not running (or unknown)."""
        if container_id is None:
            return None
        stream = self._streams.get(container_id)
        if stream is None:
            if self._client is None:
                self._client = connect()
            stream = self._streams[container_id] = _StatsStream(self._client, container_id)
            stream.first.wait(FIRST_DOCUMENT_S)
        return stream.latest


class _StatsStream:
    """The latest stats of one container, kept current by a background reader thread."""

    def __init__(self, client: docker.DockerClient, container_id: str) -> None:
        self.latest: Counters | None = None
        self.first = threading.Event()
        self._client = client
        self._id = container_id
        threading.Thread(target=self._read, name=f"stats-{container_id[:12]}",
                         daemon=True).start()

    def _read(self) -> None:
        try:
            for document in self._client.api.stats(self._id, stream=True, decode=True):
                self.latest = parse_stats(document)
                self.first.set()
        except (docker.errors.DockerException, requests.RequestException, OSError):
            pass  # the container is gone or the engine went away: no more readings
        finally:
            self.latest = None
            self.first.set()


def parse_stats(stats: Mapping[str, Any]) -> Counters | None:
    """Counters from one Engine API stats document (cgroup v1 or v2 engine)."""
    if not stats or stats.get("read") == NEVER_READ or not stats.get("pids_stats"):
        return None
    cpu_ns = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage", 0)
    memory = stats.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    rss = max(int(memory.get("usage", 0)) - int(inactive), 0)
    read = write = 0
    for entry in (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += int(entry.get("value", 0))
        elif op == "write":
            write += int(entry.get("value", 0))
    networks = stats.get("networks")
    rx = sum(int(n.get("rx_bytes", 0)) for n in networks.values()) if networks else None
    tx = sum(int(n.get("tx_bytes", 0)) for n in networks.values()) if networks else None
    return Counters(int(cpu_ns) / 1e9, rss, read, write, rx, tx)
