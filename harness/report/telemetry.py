"""The ``telemetry`` block of ``summary.json``: where per-request telemetry came from, and the
OpenTelemetry accounting (lost, late, foreign, rejected) of a run that had it."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.artifacts import REQUESTS
from harness.artifacts.join import otel_accounting
from harness.artifacts.rundata import RunData
from harness.cost.quantities import SOURCE_COUNTS

__all__ = ["otel_notes", "telemetry_summary"]


def telemetry_summary(run: RunData, groups: pd.DataFrame) -> dict[str, Any]:
    """``{"sources": {source: priced requests}, "otel": accounting or None}``.

    ``groups`` is the aggregated request frame (``ledger.inputs.groups``)."""
    sources = {name: int(groups[column].sum()) if column in groups.columns else 0
               for name, column in SOURCE_COUNTS.items()}  # fmt: skip
    return {"sources": sources, "otel": otel_accounting(run.run_dir, run.run_dir / REQUESTS)}


def otel_notes(telemetry: dict[str, Any]) -> list[str]:
    """One note per problem of the OTel accounting (none on a clean run)."""
    otel = telemetry.get("otel")
    if not otel:
        return []
    notes = []
    if otel["lost_requests"]:
        notes.append(f"otel: {otel['lost_requests']:,} of {otel['requests_traced']:,} traced "
                     "requests have no trace (spans lost: not exported, killed before "
                     "flushing, or refused); their telemetry is 'none'")  # fmt: skip
    if otel.get("unanswered_requests"):
        notes.append(f"otel: {otel['unanswered_requests']:,} traced requests got no response "
                     "and have no trace (no server saw them)")
    if otel["late_spans"]:
        notes.append(f"otel: {otel['late_spans']:,} spans arrived after the stack was down")
    if otel["rejected_payloads"] or otel["rejected_spans"]:
        notes.append(f"otel: {otel['rejected_payloads']:,} payloads and "
                     f"{otel['rejected_spans']:,} spans rejected; first: {otel['first_error']}")
    return notes


def otel_line(summary: dict[str, Any]) -> str | None:
    """The terminal's one line about OpenTelemetry (None when the run had none)."""
    otel = (summary.get("telemetry") or {}).get("otel")
    if not otel:
        return None
    return (f"otel: {otel['requests_traced']:,} traced requests, {otel['spans']:,} spans, "
            f"lost {otel['lost_requests']:,}, unanswered {otel.get('unanswered_requests', 0):,}, "
            f"late spans {otel['late_spans']:,}, foreign traces "
            f"{otel['foreign_traces']:,}, rejected payloads {otel['rejected_payloads']:,}")
