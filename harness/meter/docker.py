"""Meters the docker runtime through the Docker Engine API (``GET /containers/ID/stats``).

One streaming stats request per container (the engine pushes a document every second); a
sample is the latest document of each. CPU is the cgroup's cumulative usage, memory is
usage minus inactive file cache (what ``docker stats`` shows), network bytes are summed over
the container's interfaces, block I/O over its devices. A container that stopped or vanished
is ``alive=False`` and keeps its last cumulative counters, so deltas never go negative; one that
restarted is metered again, its counters carrying on from the old totals.

:func:`make_docker_meter` picks :class:`~harness.meter.cgroup.CgroupMeter` (reads the same
counters from cgroup files, much cheaper) when the engine runs on this host.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors
import requests

from harness.meter.base import UsageSample
from harness.meter.counters import CounterBook, Counters
from harness.stack.base import Replica
from harness.stack.compose_engine import connect

NEVER_READ = "0001-01-01T00:00:00Z"
FIRST_DOCUMENT_S = 2.0  # the engine sends a stream's first document at once


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
        return [self._book.sample(rep, now, *self.read_with_process(rep.container_id))
                for rep in self._replicas()]

    def read_with_process(self, container_id: str | None) -> tuple[Counters | None, object]:
        """One container's latest counters, or None when it is not running (or unknown), and
        which run of the container they are of (its start time: a restart is a new run)."""
        if container_id is None:
            return None, None
        stream = self._streams.get(container_id)
        if stream is None or stream.ended.is_set():  # ended: it stopped; running again?
            if self._client is None:
                self._client = connect()
            started = _started_at(self._client, container_id)
            if started is None:
                return None, None
            stream = self._streams[container_id] = _StatsStream(self._client, container_id,
                                                                started)
            stream.first.wait(FIRST_DOCUMENT_S)
        return stream.latest, stream.started_at


def _started_at(client: docker.DockerClient, container_id: str) -> str | None:
    """When the container's current process started, or None when it is not running."""
    try:
        state = client.api.inspect_container(container_id)["State"]
    except (docker.errors.DockerException, requests.RequestException, KeyError, TypeError):
        return None
    return str(state.get("StartedAt")) if state.get("Running") else None


class _StatsStream:
    """The latest stats of one container, kept current by a background reader thread."""

    def __init__(self, client: docker.DockerClient, container_id: str, started_at: str) -> None:
        self.started_at = started_at
        self.latest: Counters | None = None
        self.first = threading.Event()
        self.ended = threading.Event()
        self._client = client
        self._id = container_id
        threading.Thread(target=self._read, name=f"stats-{container_id[:12]}",
                         daemon=True).start()

    def _read(self) -> None:
        """The engine keeps a stream open while its container is stopped (documents without
        counters) and goes on when it starts again: then the start time is looked up anew, so
        the readings of the new process are told apart from the old one's."""
        try:
            for document in self._client.api.stats(self._id, stream=True, decode=True):
                counters = parse_stats(document)
                if counters is not None and self.latest is None and self.first.is_set():
                    self.started_at = _started_at(self._client, self._id) or self.started_at
                self.latest = counters
                self.first.set()
        except (docker.errors.DockerException, requests.RequestException, OSError):
            pass  # the container is gone or the engine went away: no more readings
        finally:
            self.latest = None
            self.first.set()
            self.ended.set()


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
