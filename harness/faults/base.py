"""The `Fault` protocol and the record every inject/revert step writes to ``faults.jsonl``."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Fault(Protocol):
    """A fault is a pair: ``inject`` makes something go wrong, ``revert`` undoes it.
    Both return details worth recording (replicas touched, time to ready, ...)."""

    def inject(self) -> dict[str, Any]: ...

    def revert(self) -> dict[str, Any]: ...


@dataclass
class FaultRecord:
    fault: str
    kind: str
    target: str
    action: str  # inject | revert
    status: str  # ok | failed
    start: float
    end: float
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class FaultLog:
    """Appends one JSON line per step and flushes it at once (a crash keeps every step)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[FaultRecord] = []
        path.touch()  # the artifact exists even when the scenario has no fault

    def write(self, record: FaultRecord) -> None:
        self.records.append(record)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(record), default=str) + "\n")


def timed(action: Any) -> tuple[float, float, dict[str, Any] | None, BaseException | None]:
    """Run ``action()``; return start, end, its details, and the exception it raised."""
    start = time.time()
    try:
        details = action()
    except Exception as exc:  # recorded by the caller, never lost
        return start, time.time(), None, exc
    return start, time.time(), details, None
