"""Per-request telemetry carried by the W3C ``Server-Timing`` response header.

The contract (see ``docs/telemetry.md``)::

    Server-Timing: cpu;dur=12.4, db;desc="r=3 w=1", cache;desc="hit=2 miss=1",
                   ext;desc="payments=1", retry;desc="n=2", log;desc="bytes=512"
    X-Served-By: <replica id>

Parsing never raises: a malformed or oversized header yields the fields that could be read
and counts as ``malformed`` so the run can report it.

Duplicates: counter metrics (``db``, ``cache``, ``ext``, ``retry``, ``log``) are summed, so a
service may report each call as it happens; ``cpu`` is a total, the last one wins. Within one
metric the first occurrence of a parameter wins (as in the W3C processing model). Metrics
other than the six above, and unknown keys inside a known ``desc``, are ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_HEADER_CHARS = 8192


@dataclass(frozen=True, slots=True)
class Telemetry:
    """What one response told us about the work it did. ``None`` means not reported."""

    cpu_ms: float | None = None
    db_reads: int | None = None
    db_writes: int | None = None
    cache_hits: int | None = None
    cache_misses: int | None = None
    external: dict[str, int] = field(default_factory=dict)
    retries: int | None = None
    log_bytes: int | None = None
    malformed: bool = False

    @property
    def external_calls(self) -> int | None:
        return sum(self.external.values()) if self.external else None


# The header of a request that did nothing but compute (the most common one), read without
# the general parser: same result, a fifth of the time on the load generator's flush path.
_CPU_ONLY = re.compile(r"cpu;dur=([0-9]{1,20}(?:\.[0-9]{1,20})?)")


def parse_server_timing(header: str | None) -> Telemetry:
    """Parse a ``Server-Timing`` header value into :class:`Telemetry` (never raises)."""
    if not header:
        return Telemetry()
    cpu_only = _CPU_ONLY.fullmatch(header)
    if cpu_only is not None:
        return Telemetry(cpu_ms=float(cpu_only.group(1)))
    acc = _Accumulator()
    if len(header) > MAX_HEADER_CHARS:
        # Keep whole metrics only: a cut one could carry a truncated number.
        header = header[: header.rfind(",", 0, MAX_HEADER_CHARS + 1) + 1]
        acc.malformed = True
    if "\x00" in header:  # reserved for the quoted-string placeholders below
        header = header.replace("\x00", "")
        acc.malformed = True
    quoted: list[str] = []
    if '"' in header:
        header = _extract_quoted(header, quoted, acc)
    for item in header.split(","):
        name, _, params = item.partition(";")
        handler = _METRICS.get(name.strip())
        if handler is not None:
            handler(acc, _param_values(params, quoted, acc))
    return acc.result()


_PLACEHOLDER = "\x00"
_MAX_DIGITS = 18  # keeps int() cheap and the value inside int64


class _Accumulator:
    """Mutable collection point while one header is parsed."""

    __slots__ = ("counts", "cpu_ms", "external", "malformed")

    def __init__(self) -> None:
        self.cpu_ms: float | None = None
        self.counts: dict[str, int] = {}
        self.external: dict[str, int] = {}
        self.malformed = False

    def add(self, field_name: str, value: int) -> None:
        self.counts[field_name] = self.counts.get(field_name, 0) + value

    def result(self) -> Telemetry:
        return Telemetry(
            cpu_ms=self.cpu_ms,
            external=self.external,
            malformed=self.malformed,
            **self.counts,
        )


_Values = tuple[str | None, str | None]  # (dur, desc) of one metric
_MetricHandler = Callable[[_Accumulator, _Values], None]


def _extract_quoted(header: str, quoted: list[str], acc: _Accumulator) -> str:
    """Replace each quoted-string by ``\\x00<index>\\x00`` and store its text in *quoted*.

    An unterminated quoted-string drops the rest of the header and marks it malformed.
    """
    if "\\" in header:
        return _extract_escaped(header, quoted, acc)
    parts = header.split('"')
    if len(parts) % 2 == 0:
        acc.malformed = True
        parts.pop()
    quoted.extend(parts[1::2])
    out = [f"{parts[2 * i]}{_PLACEHOLDER}{i}{_PLACEHOLDER}" for i in range(len(quoted))]
    out.append(parts[-1])
    return "".join(out)


def _extract_escaped(header: str, quoted: list[str], acc: _Accumulator) -> str:
    """:func:`_extract_quoted` for headers with backslash escapes (rare, so plainly written)."""
    out: list[str] = []
    pos = 0
    while (start := header.find('"', pos)) >= 0:
        out.append(header[pos:start])
        value, pos = _read_quoted(header, start + 1)
        if pos < 0:
            acc.malformed = True
            return "".join(out)
        out.append(f"{_PLACEHOLDER}{len(quoted)}{_PLACEHOLDER}")
        quoted.append(value)
    out.append(header[pos:])
    return "".join(out)


def _read_quoted(header: str, pos: int) -> tuple[str, int]:
    """Read a quoted-string body from *pos*; return (text, index after the closing quote)."""
    parts: list[str] = []
    while True:
        end = header.find('"', pos)
        if end < 0:
            return "", -1
        escape = header.find("\\", pos, end)
        if escape < 0:
            parts.append(header[pos:end])
            return "".join(parts), end + 1
        if escape + 1 >= len(header):
            return "", -1
        parts.append(header[pos:escape])
        parts.append(header[escape + 1])
        pos = escape + 2


def _param_values(params: str, quoted: list[str], acc: _Accumulator) -> _Values:
    """Return the (dur, desc) values of one metric's parameters; first occurrence wins."""
    dur: str | None = None
    desc: str | None = None
    for param in params.split(";") if params else ():
        key, eq, value = param.partition("=")
        key = key.strip().lower()
        value = value.strip()
        if not eq:
            acc.malformed = acc.malformed or bool(key)
            continue
        if value.startswith(_PLACEHOLDER):
            # Resolve the placeholder; anything glued to it (desc="a"b) is malformed.
            index = value[1:-1]
            if value.endswith(_PLACEHOLDER) and index.isdigit():
                value = quoted[int(index)]
            else:
                acc.malformed = True
                value = ""
        if key == "dur" and dur is None:
            dur = value
        elif key == "desc" and desc is None:
            desc = value
    return dur, desc


def _cpu(acc: _Accumulator, values: _Values) -> None:
    dur = values[0]
    try:
        ms = float(dur) if dur is not None and len(dur) <= 64 else math.nan
    except ValueError:
        ms = math.nan
    if math.isfinite(ms) and ms >= 0:
        acc.cpu_ms = ms
    else:
        acc.malformed = True


def _desc_pairs(acc: _Accumulator, values: _Values) -> list[tuple[str, int]]:
    """The ``key=count`` pairs of a desc; bad pairs mark the header malformed and are skipped."""
    desc = values[1]
    if desc is None:
        acc.malformed = True
        return []
    pairs: list[tuple[str, int]] = []
    for word in desc.split():
        key, _, text = word.partition("=")
        if key and text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS:
            pairs.append((key, int(text)))
        else:
            acc.malformed = True
    return pairs


def _keyed(**fields: str) -> _MetricHandler:
    """A handler for a counter metric whose desc keys map to Telemetry fields."""

    def handle(acc: _Accumulator, values: _Values) -> None:
        for key, number in _desc_pairs(acc, values):
            field_name = fields.get(key)
            if field_name is not None:
                acc.add(field_name, number)

    return handle


def _ext(acc: _Accumulator, values: _Values) -> None:
    for vendor, number in _desc_pairs(acc, values):
        acc.external[vendor] = acc.external.get(vendor, 0) + number


_METRICS: dict[str, _MetricHandler] = {
    "cpu": _cpu,
    "db": _keyed(r="db_reads", w="db_writes"),
    "cache": _keyed(hit="cache_hits", miss="cache_misses"),
    "ext": _ext,
    "retry": _keyed(n="retries"),
    "log": _keyed(bytes="log_bytes"),
}
