"""CPU time of running processes, polled in a thread and interpolated at any instant, so a
benchmark can cut exactly the window it measured out of a whole run."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Literal

import numpy as np
import psutil
from benchlib import process_cpu_s

Members = Literal["self", "below", "tree"]


def pin_all_threads(pid: int, cpus: set[int]) -> None:
    """Move every thread of ``pid`` to ``cpus``: ``sched_setaffinity`` moves one thread only,
    so a process pinned after it started its threads (waitress's workers) keeps them where
    they were."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return  # gone already
    for tid in tids:
        try:
            if os.sched_getaffinity(tid) != cpus:
                os.sched_setaffinity(tid, cpus)
        except OSError:
            continue  # the thread ended meanwhile


class CpuProbe:
    """Summed CPU seconds (user + system) of a set of processes, every ``every`` seconds.

    ``members``: ``"self"`` the process ``pid``; ``"below"`` its descendants only (the targets a
    ``harness run`` starts: with ``pin``, every thread of each is moved to those CPUs at every
    poll); ``"tree"`` both. A process that exits keeps its last reading, so the sum never goes
    down.
    """

    def __init__(self, pid: int, members: Members = "self", pin: set[int] | None = None,
                 every: float = 0.2,
                 keep: Callable[[str], bool] | None = None) -> None:  # fmt: skip
        self.pid = pid
        self.members = members
        self.pin = pin
        self.keep = keep  # by process name: only the members it keeps are summed
        self.last: dict[int, float] = {}
        self.points: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(every,), daemon=True)
        self._thread.start()

    def _pids(self) -> list[int] | None:
        """The members now; None once the root process is gone."""
        if self.members == "self":
            return [self.pid] if psutil.pid_exists(self.pid) else None
        try:
            below = psutil.Process(self.pid).children(recursive=True)
            if self.members == "tree":
                below.append(psutil.Process(self.pid))
        except psutil.Error:
            return None
        return [p.pid for p in below if self.keep is None or self._kept(p)]

    def _kept(self, proc: psutil.Process) -> bool:
        try:
            return self.keep is not None and self.keep(proc.name())
        except psutil.Error:
            return False

    def _poll(self, every: float) -> None:
        while not self._stop.is_set():
            pids = self._pids()
            if pids is None:
                return
            for pid in pids:
                if self.pin is not None:
                    pin_all_threads(pid, self.pin)
                try:
                    self.last[pid] = process_cpu_s(pid)
                except ProcessLookupError:
                    continue
            self.points.append((time.time(), sum(self.last.values())))
            self._stop.wait(every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds used between two Unix times inside the polled span."""
        xs = [t for t, _ in self.points]
        ys = [c for _, c in self.points]
        if not xs or start < xs[0] or end > xs[-1]:
            raise SystemExit("the CPU probe did not cover the measured window")
        return float(np.interp(end, xs, ys) - np.interp(start, xs, ys))
