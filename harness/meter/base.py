"""The `Meter` protocol: one call returns one usage sample per replica."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class UsageSample:
    ts: float
    service: str
    replica: str
    role: str
    cpu_s: float  # cumulative CPU seconds (user + system) of the replica's process tree
    rss_bytes: int
    io_read_bytes: int
    io_write_bytes: int
    net_tx_bytes: int | None
    net_rx_bytes: int | None
    cpu_limit: float | None
    mem_limit_bytes: int | None
    alive: bool


class Meter(Protocol):
    def sample(self) -> list[UsageSample]: ...
