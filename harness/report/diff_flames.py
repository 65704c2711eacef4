"""Diff flame graphs for ``compare.html``: per endpoint profiled in both the reference run and
another run (red = costlier share, green = cheaper), from their ``profiles/`` directories."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from harness.errors import ArtifactError
from harness.profiling.analysis import cpu_by_endpoint, folded_profile
from harness.profiling.flame import diff_flame_graph_svg
from harness.profiling.layout import PROFILES_DIR

MAX_GRAPHS = 4


@dataclass(frozen=True)
class DiffFlame:
    endpoint: str
    before: str
    after: str
    svg: Markup


def diff_flames(reference: Path, other: Path, before: str, after: str) -> list[DiffFlame]:
    """Endpoints profiled on both sides, heaviest first; none when either side has no
    profiles (a baseline directory keeps no profiles)."""
    left, right = reference / PROFILES_DIR, other / PROFILES_DIR
    try:
        if not (left / "index.json").is_file() or not (right / "index.json").is_file():
            return []
        shared = [e for e in cpu_by_endpoint(right) if e in cpu_by_endpoint(left)]
        return [DiffFlame(e, before, after, Markup(diff_flame_graph_svg(
            folded_profile(left, endpoint=e), folded_profile(right, endpoint=e),
            f"{e}: {before} → {after}"))) for e in shared[:MAX_GRAPHS]]
    except ArtifactError:
        return []
