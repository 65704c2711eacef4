"""Stage 2 — the run: a :class:`~harness.scenario.Scenario` in, a run directory out.

:class:`Run` owns one run: stack up → warm-up → phases (faults on their timeline) → stack
down, writing the artifacts (``harness.artifacts``) as it goes, and always reverting faults
and stopping everything it started, also on SIGINT/SIGTERM and errors. It returns a
:class:`RunResult` (status, records, phases); analysis then reads the directory from disk.

Its parts live in their own packages: ``stack`` (targets up and down), ``traffic`` (Locust),
``faults``, ``meter``, ``profiling``, ``otel``, ``instrument`` (imported by targets), ``images``
(the docker runtime's images). Here: ``run`` (the lifecycle), ``plan`` (``--dry-run``),
``progress`` (the live line), ``interrupt`` (signals), ``cleanup`` (after a killed harness),
``safety`` (traffic to loopback only).

The names are loaded on first use: importing ``harness.run.interrupt`` (the CLI does, before
any command) must not import Locust, whose import monkey-patches the process for gevent.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.run.run import Run, RunResult, default_run_dir, prepare_run_dir

__all__ = ["Run", "RunResult", "default_run_dir", "prepare_run_dir"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("harness.run.run"), name)
    raise AttributeError(f"module 'harness.run' has no attribute {name!r}")
