"""Recovering what a crashed or killed run left: Parquet parts not yet compacted."""

from __future__ import annotations

from pathlib import Path

from harness.artifacts.parts import compact, parts_dir
from harness.artifacts.schema import REQUEST_SCHEMA, REQUESTS, USAGE, USAGE_SCHEMA
from harness.artifacts.traces import TRACES, finish


def recover_parts(run_dir: Path) -> None:
    """Compact Parquet parts a crashed run left behind (nothing recorded is lost)."""
    for name, schema in ((REQUESTS, REQUEST_SCHEMA), (USAGE, USAGE_SCHEMA)):
        if parts_dir(run_dir / name).is_dir():
            compact(run_dir / name, schema)
    if parts_dir(run_dir / TRACES).is_dir():  # an OTLP receiver that was killed
        finish(run_dir / TRACES)
