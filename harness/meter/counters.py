"""Readings of a replica's counters turned into samples whose cumulative counters never go down.

A meter reads each replica's process (or container) as it is now: CPU-seconds, I/O and network
bytes since that process started. A replica that dies keeps its last totals (``alive=False``);
one that comes back as a new process (a kill fault's revert restarts it) reads from zero again,
and its new counters are added on top of the old totals, so the CPU it burns after the restart
is metered, not hidden under the old total until it passes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.meter.base import UsageSample
from harness.stack.base import Replica


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
    """Per replica: the last sample, the last reading and the totals of its earlier processes."""

    def __init__(self) -> None:
        self._last: dict[str, Counters] = {}  # the last sample's counters
        self._raw: dict[str, tuple[Counters, object]] = {}  # the last reading, and whose
        self._base: dict[str, Counters] = {}  # the totals of the replica's earlier processes

    def sample(self, rep: Replica, now: float, reading: Counters | None,
               process: object = None) -> UsageSample:
        """``process`` names the process read (its pid and start time, say): a different one
        is a restart. Without it, a CPU counter that went down tells a restart."""
        key = rep.replica
        last = self._last.get(key, DEAD)
        if reading is None:
            cur = Counters(last.cpu_s, 0, last.io_read_bytes, last.io_write_bytes,
                           last.net_rx_bytes, last.net_tx_bytes)
        else:
            cur = self._carried(key, reading, process)
            cur = Counters(max(cur.cpu_s, last.cpu_s), cur.rss_bytes,
                           max(cur.io_read_bytes, last.io_read_bytes),
                           max(cur.io_write_bytes, last.io_write_bytes),
                           _max(cur.net_rx_bytes, last.net_rx_bytes),
                           _max(cur.net_tx_bytes, last.net_tx_bytes))
        self._last[key] = cur
        return UsageSample(now, rep.service, rep.replica, rep.role, cur.cpu_s, cur.rss_bytes,
                           cur.io_read_bytes, cur.io_write_bytes, cur.net_tx_bytes,
                           cur.net_rx_bytes, rep.cpu_limit, rep.mem_limit, reading is not None)

    def _carried(self, key: str, reading: Counters, process: object) -> Counters:
        """The reading on top of the totals of the replica's earlier processes."""
        previous = self._raw.get(key)
        if previous is not None:
            raw, was = previous
            if (process is not None and process != was) or reading.cpu_s < raw.cpu_s:
                self._base[key] = _plus(self._base.get(key, DEAD), raw)
        self._raw[key] = (reading, process)
        return _plus(self._base.get(key, DEAD), reading)


def _plus(base: Counters, reading: Counters) -> Counters:
    """``reading``'s cumulative counters on top of ``base``'s (memory is not cumulative)."""
    return Counters(base.cpu_s + reading.cpu_s, reading.rss_bytes,
                    base.io_read_bytes + reading.io_read_bytes,
                    base.io_write_bytes + reading.io_write_bytes,
                    _add(base.net_rx_bytes, reading.net_rx_bytes),
                    _add(base.net_tx_bytes, reading.net_tx_bytes))


def _add(a: int | None, b: int | None) -> int | None:
    return None if b is None else b + (a or 0)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)
