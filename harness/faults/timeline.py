"""Runs the ``faults:`` timeline: injects each fault at its offset, reverts it at its end,
names the phases, and reverts whatever is still active when the run stops for any reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from harness.errors import FaultError, RollbackFailed
from harness.faults.base import Fault, FaultLog, FaultRecord, timed

if TYPE_CHECKING:
    from harness.scenario.faults import FaultSpec

RECOVERY = "recovery"


class FaultTimeline:
    """``poll`` is called from the run's loop with seconds since the measured part began."""

    def __init__(self, specs: Sequence[FaultSpec], build: Callable[[FaultSpec], Fault],
                 log: FaultLog, on_phase: Callable[[str], None]) -> None:
        self.specs = sorted(specs, key=lambda s: s.start)
        self.build = build
        self.log = log
        self.on_phase = on_phase
        self.active: dict[str, tuple[FaultSpec, Fault]] = {}
        self._done: set[str] = set()
        self.revert_errors: list[str] = []

    def poll(self, since: float) -> None:
        for name, (spec, fault) in list(self.active.items()):
            if since >= spec.end:
                self._revert(name, spec, fault)
                self.on_phase(self._phase_after())
        for spec in self.specs:
            if spec.name not in self._done and spec.name not in self.active and since >= spec.start:
                self._inject(spec)
                self.on_phase(spec.name)

    def _phase_after(self) -> str:
        return next(reversed(self.active)) if self.active else RECOVERY

    def _inject(self, spec: FaultSpec) -> None:
        fault = None
        try:
            fault = self.build(spec)
        except FaultError as exc:
            self._record(spec, "inject", 0.0, 0.0, None, exc)
            raise
        self.active[spec.name] = (spec, fault)  # a half-done inject is still reverted
        start, end, details, error = timed(fault.inject)
        self._record(spec, "inject", start, end, details, error)
        if error is not None:
            raise FaultError(f"fault {spec.name!r} ({spec.kind} on {spec.target}) could not be "
                             f"injected: {error}") from error

    def _revert(self, name: str, spec: FaultSpec, fault: Fault) -> None:
        del self.active[name]
        self._done.add(name)
        start, end, details, error = timed(fault.revert)
        self._record(spec, "revert", start, end, details, error)
        if error is not None:
            self.revert_errors.append(f"fault {name!r} ({spec.kind} on {spec.target}) could not "
                                      f"be reverted: {error}")

    def revert_all(self) -> None:
        """Revert every active fault, newest first; a failing revert does not stop the others.
        Raises RollbackFailed at the end if any revert failed during the run."""
        for name, (spec, fault) in reversed(list(self.active.items())):
            self._revert(name, spec, fault)
        if self.revert_errors:
            raise RollbackFailed("; ".join(self.revert_errors))

    def _record(self, spec: FaultSpec, action: str, start: float, end: float,
                details: dict[str, object] | None, error: BaseException | None) -> None:
        self.log.write(FaultRecord(
            fault=spec.name, kind=spec.kind, target=spec.target, action=action,
            status="failed" if error else "ok", start=start, end=end,
            error=None if error is None else f"{type(error).__name__}: {error}",
            details=details or {}))
