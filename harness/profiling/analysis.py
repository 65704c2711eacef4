"""Read ``RUN_DIR/profiles/``: CPU per endpoint, merged folded stacks, top functions.

Every reader takes the ``profiles`` directory and optional ``service`` / ``phase`` filters
(``None`` = all). CPU is in seconds. A run without profiles gives empty results.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from harness.errors import ArtifactError
from harness.profiling.layout import ProfileEntry, load_index
from harness.profiling.pprof import NS_PER_S

__all__ = ["FunctionCost", "cpu_by_endpoint", "folded_profile", "read_folded", "top_functions"]

FunctionCost = tuple[str, float, float]  # function, self CPU s, total CPU s


def _entries(profiles_dir: Path, endpoint: str | None, service: str | None,
             phase: str | None) -> list[ProfileEntry]:  # fmt: skip
    return [
        e for e in load_index(profiles_dir).entries
        if (endpoint is None or e.endpoint == endpoint)
        and (service is None or e.service == service)
        and (phase is None or e.phase == phase)
    ]  # fmt: skip


def cpu_by_endpoint(profiles_dir: Path, service: str | None = None,
                    phase: str | None = None) -> dict[str, float]:  # fmt: skip
    """CPU seconds per endpoint label, ``(untagged)`` included, heaviest first."""
    totals: defaultdict[str, float] = defaultdict(float)
    for entry in _entries(profiles_dir, None, service, phase):
        totals[entry.endpoint] += entry.cpu_s
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def read_folded(path: Path) -> dict[str, float]:
    """A stored ``.folded`` file as ``{stack: CPU seconds}``."""
    stacks: defaultdict[str, float] = defaultdict(float)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable folded profile ({exc})") from exc
    for number, line in enumerate(text.splitlines(), 1):
        stack, _, value = line.rpartition(" ")
        if not stack or not value.isdigit():
            raise ArtifactError(f"{path}:{number}: not a folded line ('frame;frame value')")
        stacks[stack] += int(value) / NS_PER_S
    return dict(stacks)


def folded_profile(profiles_dir: Path, endpoint: str | None = None, service: str | None = None,
                   phase: str | None = None) -> dict[str, float]:  # fmt: skip
    """The folded stacks (CPU seconds) of every stored profile that matches, merged."""
    merged: defaultdict[str, float] = defaultdict(float)
    for entry in _entries(profiles_dir, endpoint, service, phase):
        for stack, value in read_folded(profiles_dir / entry.folded).items():
            merged[stack] += value
    return dict(merged)


def top_functions(profiles_dir: Path, endpoint: str, service: str | None = None,
                  phase: str | None = None, limit: int = 20) -> list[FunctionCost]:
    """The ``limit`` functions of ``endpoint`` with the most self CPU: (name, self s, total s).

    Self CPU is spent in the function itself (the leaf frame); total CPU includes its callees
    and counts each stack once even when the function recurses.
    """
    self_s: defaultdict[str, float] = defaultdict(float)
    total_s: defaultdict[str, float] = defaultdict(float)
    for stack, value in folded_profile(profiles_dir, endpoint, service, phase).items():
        frames = stack.split(";")
        self_s[frames[-1]] += value
        for frame in set(frames):
            total_s[frame] += value
    ranked = sorted(total_s, key=lambda name: (-self_s[name], -total_s[name], name))
    return [(name, self_s[name], total_s[name]) for name in ranked[:limit]]
