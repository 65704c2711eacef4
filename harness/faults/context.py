"""What faults may act on: only things this run started (its stack, its proxy, its traffic)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from harness.stack.base import Cancel

if TYPE_CHECKING:
    from harness.faults.proxy_client import ToxiproxyClient
    from harness.meter.sampler import Sampler
    from harness.traffic.schedule import Schedule


class ControllableStack(Protocol):
    """The replica operations a runtime offers to faults and the autoscaler."""

    def port_of(self, service: str) -> int: ...

    def alive(self, service: str) -> list[str]: ...

    def signal(self, service: str, replica_ids: list[str], sig: int) -> None: ...

    def stop_replica(self, service: str, replica_id: str) -> None: ...

    def start_replica(self, service: str, cancel: Cancel, replica_id: str | None = None
                      ) -> str: ...

    def control_file(self, service: str) -> Path: ...

    def kind_of(self, service: str) -> str: ...

    def pids_of(self, service: str) -> list[int]: ...


@dataclass
class FaultContext:
    stack: ControllableStack
    cancel: Cancel
    proxy: ToxiproxyClient | None
    schedule: Schedule
    sampler: Sampler
    run_dir: Path
