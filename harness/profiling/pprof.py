"""CPU stacks out of pprof profiles, and merged pprof profiles out of stacks.

A stack is a tuple of :data:`Frame` (function, file, line), root first; values are CPU
nanoseconds. Samples are split by their ``endpoint`` label; samples without it fall under
:data:`UNTAGGED`. The agent does not de-duplicate samples (one per line number), so stacks
are aggregated here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.profiling.proto import InvalidProfile, LabelView, PprofView, new_profile

__all__ = ["UNTAGGED", "CpuProfile", "Frame", "Stack", "decode_cpu", "encode_merged",
           "frame_label"]  # fmt: skip

UNTAGGED = "(untagged)"
ENDPOINT_LABEL = "endpoint"
NS_PER_S = 1_000_000_000

Frame = tuple[str, str, int]  # function, file, line
Stack = tuple[Frame, ...]  # root first
NO_STACK: Stack = (("[unknown]", "", 0),)  # a sample without locations


@dataclass
class CpuProfile:
    """One decoded profile: CPU nanoseconds per endpoint per stack, and its time window."""

    by_endpoint: dict[str, Counter[Stack]] = field(default_factory=dict)
    start_ns: int = 0
    duration_ns: int = 0
    period_ns: int = 0

    def add(self, endpoint: str, stack: Stack, value_ns: int) -> None:
        self.by_endpoint.setdefault(endpoint, Counter())[stack] += value_ns


def decode_cpu(prof: PprofView, endpoint: str = UNTAGGED, sample_rate: int = 0) -> CpuProfile:
    """CPU stacks of ``prof``; ``endpoint`` names samples that carry no ``endpoint`` label.

    The value is the ``cpu``/``nanoseconds`` sample type; failing that, a sample count times
    the period (``period_type`` in nanoseconds) or divided by ``sample_rate`` (Hz).
    """
    strings = prof.string_table
    if strings and strings[0] != "":
        raise InvalidProfile("pprof string_table[0] must be the empty string")
    index, scale = _value_index(prof, sample_rate)
    frames = _frames(prof)
    out = CpuProfile(start_ns=prof.time_nanos, duration_ns=prof.duration_nanos,
                     period_ns=_period_ns(prof, sample_rate))  # fmt: skip
    try:
        for sample in prof.sample:
            value = sample.value[index] * scale
            if value <= 0:
                continue
            leaf_first = [frame for loc in sample.location_id for frame in frames[loc]]
            stack = tuple(reversed(leaf_first)) or NO_STACK
            out.add(_endpoint_of(sample.label, strings, endpoint), stack, int(value))
    except (IndexError, KeyError) as exc:
        raise InvalidProfile(f"pprof sample refers to a missing value or location ({exc})") from exc
    return out


def _value_index(prof: PprofView, sample_rate: int) -> tuple[int, float]:
    strings = prof.string_table
    try:
        types = [(strings[t.type], strings[t.unit]) for t in prof.sample_type]
        period_unit = strings[prof.period_type.unit]
    except IndexError as exc:
        raise InvalidProfile("pprof sample_type refers past the string table") from exc
    for i, (kind, unit) in enumerate(types):
        if kind == "cpu" and unit == "nanoseconds":
            return i, 1.0
    for i, (kind, unit) in enumerate(types):
        if kind == "samples" and unit == "count":
            if period_unit == "nanoseconds" and prof.period > 0:
                return i, float(prof.period)
            if sample_rate > 0:
                return i, NS_PER_S / sample_rate
    raise InvalidProfile(f"pprof has no CPU sample type (found {types or 'none'})")


def _period_ns(prof: PprofView, sample_rate: int) -> int:
    if prof.period > 0 and prof.string_table[prof.period_type.unit] == "nanoseconds":
        return prof.period
    return NS_PER_S // sample_rate if sample_rate > 0 else 0


def _frames(prof: PprofView) -> dict[int, list[Frame]]:
    """Location id → its frames, innermost first (inlined lines: the last is the caller)."""
    strings = prof.string_table
    try:
        functions = {
            f.id: (strings[f.name] or strings[f.system_name] or "?", strings[f.filename])
            for f in prof.function
        }
        return {
            loc.id: [(*functions[line.function_id], line.line) for line in loc.line]
            or list(NO_STACK)
            for loc in prof.location
        }
    except (IndexError, KeyError) as exc:
        raise InvalidProfile(f"pprof location refers to a missing function or string ({exc})") \
            from exc


def _endpoint_of(labels: Sequence[LabelView], strings: Sequence[str], default: str) -> str:
    for label in labels:
        if label.str and strings[label.key] == ENDPOINT_LABEL:
            return strings[label.str]
    return default


def frame_label(frame: Frame) -> str:
    """How a frame reads in folded text and flame graphs: ``function (short/file.py)``."""
    function, filename, _ = frame
    name = function.replace(";", ":").replace("\n", " ")
    short = _short_file(filename).replace(";", ":").replace("\n", " ")
    return f"{name} ({short})" if short else name


def _short_file(path: str) -> str:
    for marker in ("site-packages/", "dist-packages/"):
        if marker in path:
            return path.rsplit(marker, 1)[1]
    parts = path.replace("\\", "/").split("/")
    for i in range(len(parts) - 2, 0, -1):  # the standard library: lib/python3.11/http/x.py
        if parts[i].startswith("python3") and parts[i - 1] == "lib":
            return "/".join(parts[i + 1 :])
    return "/".join(parts[-2:]).lstrip("/")


def encode_merged(by_endpoint: Mapping[str, Mapping[Stack, int]], start_ns: int,
                  duration_ns: int, period_ns: int) -> bytes:
    """A pprof ``Profile`` (uncompressed) of the merged stacks, CPU in nanoseconds."""
    builder = _Builder()
    prof = builder.prof
    for endpoint, stacks in by_endpoint.items():
        for stack, value in stacks.items():
            ids = [builder.location(frame) for frame in stack]
            sample = prof.sample.add(location_id=ids[::-1], value=[value])
            if endpoint != UNTAGGED:
                sample.label.add(key=builder.intern(ENDPOINT_LABEL), str=builder.intern(endpoint))
    cpu, ns = builder.intern("cpu"), builder.intern("nanoseconds")
    prof.sample_type.add(type=cpu, unit=ns)
    prof.period_type.type, prof.period_type.unit = cpu, ns
    prof.period, prof.time_nanos, prof.duration_nanos = period_ns, start_ns, duration_ns
    prof.string_table.extend(builder.strings)  # dicts keep insertion order: index == position
    data: bytes = prof.SerializeToString()
    return data


class _Builder:
    """Interns strings, functions and locations of a pprof being written."""

    def __init__(self) -> None:
        self.prof: Any = new_profile()
        self.strings: dict[str, int] = {"": 0}
        self.functions: dict[tuple[str, str], int] = {}
        self.locations: dict[tuple[int, int], int] = {}

    def intern(self, text: str) -> int:
        return self.strings.setdefault(text, len(self.strings))

    def location(self, frame: Frame) -> int:
        function, filename, line = frame
        func_id = self.functions.get((function, filename))
        if func_id is None:
            func_id = self.functions[(function, filename)] = len(self.functions) + 1
            self.prof.function.add(id=func_id, name=self.intern(function),
                                   filename=self.intern(filename))  # fmt: skip
        loc_id = self.locations.get((func_id, line))
        if loc_id is None:
            loc_id = self.locations[(func_id, line)] = len(self.locations) + 1
            self.prof.location.add(id=loc_id).line.add(function_id=func_id, line=line)
        return loc_id
