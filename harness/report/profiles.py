"""The debug view's flame graphs, from ``RUN_DIR/profiles/`` (nothing when there is none).

One flame graph per profiled endpoint (all services and phases merged), heaviest first, at
most ``MAX_GRAPHS`` of them, with the endpoint's top functions by self CPU. The SVG comes from
:func:`harness.profiling.flame.flame_graph_svg`, which escapes every frame name and bounds its
own size. A broken profile directory does not sink the report: the section says what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from harness.errors import ArtifactError
from harness.profiling.analysis import FunctionCost, cpu_by_endpoint, folded_profile, top_functions
from harness.profiling.flame import flame_graph_svg
from harness.profiling.layout import PROFILES_DIR

__all__ = ["Flame", "profiles_context"]

MAX_GRAPHS = 6
TOP_FUNCTIONS = 8


@dataclass(frozen=True)
class FunctionRow:
    """A function's CPU in an endpoint's profile, and what its self CPU costs per 1M calls."""

    name: str
    self_s: float
    total_s: float
    usd_per_million_calls: float | None


@dataclass(frozen=True)
class Flame:
    """One endpoint's CPU profile: total CPU seconds, its flame graph, its top functions."""

    endpoint: str
    cpu_s: float
    svg: Markup
    functions: list[FunctionRow]


def _rows(functions: list[FunctionCost], endpoint_cpu_s: float, cpu_ms_per_call: float | None,
          vcpu_second: float | None) -> list[FunctionRow]:
    """A function's share of the endpoint's profiled CPU × the endpoint's measured CPU per
    call × the book's vCPU-second price × 1M (None when either is unknown). Shares, not
    profiled seconds, because the profile also covers the unpriced warm-up."""
    def price(self_s: float) -> float | None:
        if not cpu_ms_per_call or vcpu_second is None or endpoint_cpu_s <= 0:
            return None
        return self_s / endpoint_cpu_s * cpu_ms_per_call / 1000.0 * vcpu_second * 1e6

    return [FunctionRow(name, self_s, total_s, price(self_s))
            for name, self_s, total_s in functions]


def profiles_context(run_dir: Path, cpu_per_call: dict[str, float | None] | None = None,
                     vcpu_second: float | None = None) -> dict[str, Any]:
    """``flames`` (possibly empty), ``flames_skipped`` and ``profiles_error``."""
    directory = run_dir / PROFILES_DIR
    flames: list[Flame] = []
    try:
        cpu = cpu_by_endpoint(directory)
        for endpoint, seconds in list(cpu.items())[:MAX_GRAPHS]:
            folded = folded_profile(directory, endpoint=endpoint)
            svg = flame_graph_svg(folded, f"{endpoint} — CPU, all services and phases")
            functions = top_functions(directory, endpoint, limit=TOP_FUNCTIONS)
            rows = _rows(functions, seconds, (cpu_per_call or {}).get(endpoint), vcpu_second)
            flames.append(Flame(endpoint, seconds, Markup(svg), rows))
    except ArtifactError as exc:
        return {"flames": [], "flames_skipped": 0, "profiles_error": str(exc)}
    return {"flames": flames, "flames_skipped": max(len(cpu) - MAX_GRAPHS, 0),
            "profiles_error": None}  # fmt: skip
