"""Meters the docker runtime from cgroup files and ``/proc`` on the docker host.

The same counters as the Engine API's stats, read straight from the kernel: no HTTP round trip
and no JSON per container. Each container's cgroup is found from its main process
(``/proc/<pid>/cgroup``, pid from one inspect), so the cgroupfs and systemd drivers both work:

=========  ===================================  ==========================================
           cgroup v1                            cgroup v2
=========  ===================================  ==========================================
CPU        ``cpuacct.usage`` (ns)               ``cpu.stat`` ``usage_usec``
memory     ``memory.usage_in_bytes`` minus      ``memory.current`` minus ``inactive_file``
           ``total_inactive_file``
block I/O  ``blkio.throttle.io_service_bytes``  ``io.stat`` ``rbytes`` / ``wbytes``
network    ``/proc/<pid>/net/dev`` (the container's namespace), every interface but ``lo``
=========  ===================================  ==========================================

A container whose files cannot be read (engine on another host, unusual layout) is read
through the fallback :class:`~harness.meter.docker.DockerMeter` instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from harness.meter.base import Meter, UsageSample
from harness.meter.counters import CounterBook, Counters
from harness.meter.docker import DockerMeter
from harness.stack.base import Replica
from harness.stack.compose_engine import connect

PROC = Path("/proc")
_BLKIO_FILES = ("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes",
                "blkio.io_service_bytes_recursive")


def cgroups_readable() -> bool:
    """True when this process sees a cgroup hierarchy (v1 or v2) and the host's /proc."""
    return bool(_mounts()) and (PROC / "1" / "cgroup").is_file()


class CgroupMeter:
    """Samples every replica's container from its cgroup files."""

    def __init__(self, replicas: Callable[[], list[Replica]], client: docker.DockerClient,
                 fallback: DockerMeter) -> None:
        self._replicas = replicas
        self._client = client
        self._fallback = fallback
        self._book = CounterBook()
        self._places: dict[str, _Place | None] = {}
        self._mounts = _mounts()

    def sample(self) -> list[UsageSample]:
        now = time.time()
        return [self._book.sample(rep, now, *self._read(rep)) for rep in self._replicas()]

    def _read(self, rep: Replica) -> tuple[Counters | None, object]:
        """The container's counters, and which process they are of (its main pid)."""
        cid = rep.container_id
        if cid is None:
            return None, None
        for _ in range(2):  # a cached place may be stale: the container restarted meanwhile
            if cid not in self._places:
                pid = self._pid(cid)
                if pid is None:
                    return None, None  # not running now: looked up again at the next sample
                try:
                    self._places[cid] = _find_place(pid, cid, self._mounts)
                except OSError:
                    return None, None  # the process ended between the inspect and the read
            place = self._places[cid]
            if place is None:
                return self._fallback.read_with_process(cid)
            try:
                return place.read(), place.pid
            except (OSError, ValueError):
                del self._places[cid]  # its process is gone: stopped, or a new one since
        return None, None

    def _pid(self, cid: str) -> int | None:
        try:
            pid = int(self._client.api.inspect_container(cid)["State"]["Pid"])
        except (docker.errors.DockerException, KeyError, TypeError, ValueError):
            return None
        return pid if pid > 0 else None


def _find_place(pid: int, cid: str, mounts: dict[str, tuple[Path, str]]) -> _Place | None:
    """The container's counter files, or None when this layout cannot be read (the API then).
    OSError: the process is gone."""
    try:
        return _Place.find(pid, cid, mounts)
    except ValueError:
        return None


class _Place:
    """Where one container's counters live."""

    def __init__(self, pid: int, dirs: dict[str, Path], v2: bool) -> None:
        self.pid, self.dirs, self.v2 = pid, dirs, v2
        self.net_dev = PROC / str(pid) / "net" / "dev"
        blkio = [dirs["blkio"] / name for name in (("io.stat",) if v2 else _BLKIO_FILES)]
        self.blkio = next((path for path in blkio if path.exists()), None)

    @classmethod
    def find(cls, pid: int, cid: str, mounts: dict[str, tuple[Path, str]]) -> _Place | None:
        paths: dict[str, str] = {}
        for line in (PROC / str(pid) / "cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
        if cid not in "".join(paths.values()):
            return None  # not this container's process (or not its cgroup layout)
        want = ("cpuacct", "memory", "blkio")
        if all(name in paths and name in mounts for name in want):
            dirs = {name: _join(mounts[name], paths[name]) for name in want}
            return cls(pid, dirs, v2=False)
        if "" in paths and "" in mounts:
            unified = _join(mounts[""], paths[""])
            return cls(pid, dict.fromkeys(want, unified), v2=True)
        return None

    def read(self) -> Counters:
        """Cgroup files first: they vanish when the container stops (then OSError)."""
        cpu, rss, rd, wr = self._v2() if self.v2 else self._v1()
        rx, tx = _net_dev(self.net_dev)
        return Counters(cpu, rss, rd, wr, rx, tx)

    def _v1(self) -> tuple[float, int, int, int]:
        cpu = int(_text(self.dirs["cpuacct"] / "cpuacct.usage")) / 1e9
        mem = self.dirs["memory"]
        usage = int(_text(mem / "memory.usage_in_bytes"))
        inactive = _keyed(mem / "memory.stat").get("total_inactive_file", 0)
        rd, wr = _blkio_v1(self.blkio) if self.blkio else (0, 0)
        return cpu, max(usage - inactive, 0), rd, wr

    def _v2(self) -> tuple[float, int, int, int]:
        base = self.dirs["memory"]
        cpu = _keyed(base / "cpu.stat").get("usage_usec", 0) / 1e6
        usage = int(_text(base / "memory.current"))
        inactive = _keyed(base / "memory.stat").get("inactive_file", 0)
        rd = wr = 0
        for line in _text(self.blkio).splitlines() if self.blkio else []:
            fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
            rd += int(fields.get("rbytes", 0))
            wr += int(fields.get("wbytes", 0))
        return cpu, max(usage - inactive, 0), rd, wr


def _mounts() -> dict[str, tuple[Path, str]]:
    """Controller -> (mount point, mount root); ``""`` is the cgroup v2 (unified) mount."""
    found: dict[str, tuple[Path, str]] = {}
    try:
        lines = (PROC / "self" / "mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, point, fstype = fields[3], Path(fields[4]), tail[0]
        if fstype == "cgroup2":
            found.setdefault("", (point, root))
        elif fstype == "cgroup":
            for option in tail[2].split(","):
                found.setdefault(option, (point, root))
    return found


def _join(mount: tuple[Path, str], path: str) -> Path:
    point, root = mount
    if root != "/" and path.startswith(root):
        path = path[len(root):]
    return point / path.lstrip("/")


def _text(path: Path) -> str:
    with open(path, "rb") as handle:
        return handle.read().decode()


def _keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in _text(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def _blkio_v1(path: Path) -> tuple[int, int]:
    rd = wr = 0
    for line in _text(path).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "Read":
            rd += int(parts[2])
        elif len(parts) == 3 and parts[1] == "Write":
            wr += int(parts[2])
    return rd, wr


def _net_dev(path: Path) -> tuple[int, int]:
    rx = tx = 0
    for line in _text(path).splitlines()[2:]:
        name, _, data = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = data.split()
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


def make_docker_meter(replicas: Callable[[], list[Replica]]) -> Meter:
    """The cgroup-file meter when the engine's containers are visible here, else the API one."""
    client = connect()
    api = DockerMeter(replicas, client)
    if cgroups_readable():
        return CgroupMeter(replicas, client, fallback=api)
    return api
