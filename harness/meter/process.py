"""Meters the local runtime: each replica's whole process tree through psutil.

CPU seconds are cumulative and include children that already exited and were reaped
(``children_user``/``children_system``), so short-lived workers are not lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil

from harness.meter.base import UsageSample
from harness.stack.base import Replica


class ProcessMeter:
    """Samples CPU, RSS and I/O of every replica the stack reports, on each call."""

    def __init__(self, replicas: Callable[[], list[Replica]]) -> None:
        self._replicas = replicas
        self._procs: dict[int, psutil.Process] = {}
        self._last_cpu: dict[str, float] = {}

    def sample(self) -> list[UsageSample]:
        now = time.time()
        return [self._one(r, now) for r in self._replicas()]

    def _one(self, rep: Replica, now: float) -> UsageSample:
        cpu, rss, rd, wr, alive = 0.0, 0, 0, 0, False
        if rep.pid is not None:
            cpu, rss, rd, wr, alive = self._tree(rep.pid)
        # A dead replica keeps its last cumulative CPU so deltas never go negative.
        cpu = max(cpu, self._last_cpu.get(rep.replica, 0.0))
        self._last_cpu[rep.replica] = cpu
        return UsageSample(now, rep.service, rep.replica, rep.role, cpu, rss, rd, wr, None,
                           None, rep.cpu_limit, rep.mem_limit, alive)

    def _tree(self, pid: int) -> tuple[float, int, int, int, bool]:
        root = self._procs.get(pid)
        if root is None:
            try:
                root = self._procs[pid] = psutil.Process(pid)
            except psutil.Error:
                return 0.0, 0, 0, 0, False
        try:
            if not root.is_running() or root.status() == psutil.STATUS_ZOMBIE:
                return 0.0, 0, 0, 0, False
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0, 0, 0, 0, False
        cpu, rss, rd, wr = 0.0, 0, 0, 0
        for proc in procs:
            try:
                with proc.oneshot():
                    t = proc.cpu_times()
                    cpu += t.user + t.system + t.children_user + t.children_system
                    rss += proc.memory_info().rss
                    io = proc.io_counters()
                    rd += io.read_bytes
                    wr += io.write_bytes
            except (psutil.Error, AttributeError):
                continue
        return cpu, rss, rd, wr, True
