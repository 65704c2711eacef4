"""Inline SVG line charts: self-contained (no network), readable without script, printable.

Written by hand because the report must open offline with nothing to fetch, and one SVG path
per series is all a 1-second timeline needs. Every text is escaped. The ``data-*`` attributes
let the report's small inline script draw a synchronised crosshair and toggle series; without
script the charts still show everything (values are then in the on-call tables).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from harness.report.format import seconds

__all__ = ["Band", "Mark", "Series", "line_chart"]

W, H = 720, 210
PAD_L, PAD_R, PAD_T, PAD_B = 64, 14, 40, 26
Scale = Callable[[float], float]
TIME_STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)
CLOCK_FROM_S = 600  # from ten minutes on, time ticks read m:ss
MIN_LABEL_PX = 60.0  # a narrow band still shows the start of its label
CHAR_PX = 5.6  # advance of a 10-px sans-serif character, a little generous
COLOURS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2"]


@dataclass(frozen=True)
class Series:
    """One line: its label, its values (None: no data that second) and its data key."""

    label: str
    values: Sequence[float | None]
    key: str = ""
    step: bool = False  # draw as a step line (counts such as replicas)


@dataclass(frozen=True)
class Band:
    """A shaded span of the x axis: ``warmup``, a ``fault`` window or an ``anomaly``."""

    start: float
    end: float
    label: str
    kind: str = "fault"


@dataclass(frozen=True)
class Mark:
    """A moment on the x axis drawn as a vertical line (a replica that crashed)."""

    at: float
    label: str  # short, shown beside the line
    detail: str  # the tooltip


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^n at or above ``value`` (1 for nothing to show)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp * (1 + 1e-9):
            return float(step * exp)
    return 10.0 * exp


def tick(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def line_chart(title: str, unit: str, xs: Sequence[float], series: Sequence[Series],
               bands: Sequence[Band] = (), marks: Sequence[Mark] = ()) -> Markup:  # fmt: skip
    """An SVG line chart of one or more series over x (seconds since the run started)."""
    finite = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    if not xs or not finite:
        return Markup('<p class="empty">{}: no data</p>').format(title)
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    ymax = nice_max(max(finite))

    def px(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * (W - PAD_L - PAD_R)

    def py(y: float) -> float:
        return H - PAD_B - (y / ymax) * (H - PAD_T - PAD_B)

    keys = ",".join(escape(s.key) for s in series)
    parts = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg" data-x0="{x0:g}" data-x1="{x1:g}" '
             f'data-left="{PAD_L}" data-right="{W - PAD_R}" data-width="{W}" '
             f'data-keys="{keys}"><title>{escape(title)}</title>',
             f'<text class="title" x="{PAD_L}" y="14">{escape(title)} '
             f'<tspan class="unit">({escape(unit)})</tspan></text>']  # fmt: skip
    parts += _bands(bands, px)
    parts += _axes(ymax, x0, x1, py, px)
    for i, s in enumerate(series):
        parts.append(_path(xs, s, i, px, py))
    parts += _marks(marks, lambda x: px(min(max(x, x0), x1)))
    parts += _legend(series)
    parts.append(f'<line class="cross" x1="0" x2="0" y1="{PAD_T}" y2="{H - PAD_B}"/></svg>')
    return Markup("".join(parts))


def fit(label: str, width_px: float) -> str:
    """``label`` cut (with an ellipsis) to what fits in ``width_px`` of 10-px text."""
    room = max(int(width_px / CHAR_PX), 1)
    return label if len(label) <= room else label[: max(room - 1, 0)] + "…"


def _bands(bands: Sequence[Band], px: Scale) -> list[str]:
    """Shaded spans; fault labels alternate between two rows so neighbours stay legible."""
    out = []
    row = 0
    for b in bands:
        x_a, x_b = px(b.start), px(b.end)
        width = max(x_b - x_a, 1.5)
        label = escape(b.label)
        shown = escape(fit(b.label, max(width, MIN_LABEL_PX)))
        if b.kind == "anomaly":
            y_text = H - PAD_B - 4
        else:
            y_text = PAD_T - 14 + 11 * (row % 2)
            row += 1
        out.append(f'<g class="band {escape(b.kind)}"><rect x="{x_a:.1f}" y="{PAD_T - 16}" '
                   f'width="{width:.1f}" height="{H - PAD_T - PAD_B + 16}"><title>{label}: '
                   f'{seconds(b.start)} – {seconds(b.end)}</title></rect>'
                   f'<text x="{x_a + 2:.1f}" y="{y_text:.1f}">{shown}</text></g>')  # fmt: skip
    return out


def _marks(marks: Sequence[Mark], px: Scale) -> list[str]:
    """Vertical lines, each with a short label at the top of the plot and its detail as tooltip."""
    out = []
    for m in marks:
        x = px(m.at)
        out.append(f'<g class="mark"><title>{escape(m.detail)}</title><line x1="{x:.1f}" '
                   f'x2="{x:.1f}" y1="{PAD_T - 16}" y2="{H - PAD_B}"/><text x="{x + 3:.1f}" '
                   f'y="{PAD_T + 10}">{escape(fit(m.label, MIN_LABEL_PX * 2))}</text></g>')
    return out


def _axes(ymax: float, x0: float, x1: float, py: Scale, px: Scale) -> list[str]:
    out = []
    for frac in (0, 0.25, 0.5, 0.75, 1):
        y = py(ymax * frac)
        out.append(f'<line class="grid" x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{PAD_L - 4}" y="{y + 4:.1f}" text-anchor="end">'
                   f"{escape(tick(ymax * frac))}</text>")  # fmt: skip
    for xv in x_ticks(x0, x1):
        out.append(f'<text class="tick" x="{px(xv):.1f}" y="{H - 8}" '
                   f'text-anchor="middle">{seconds(xv, clock=x1 >= CLOCK_FROM_S)}</text>')
    return out


def x_ticks(x0: float, x1: float, most: int = 6) -> list[float]:
    """Round times between x0 and x1: multiples of the smallest step giving <= ``most``."""
    step = next((s for s in TIME_STEPS if (x1 - x0) / s <= most), TIME_STEPS[-1])
    while (x1 - x0) / step > most:
        step *= 2
    first = math.ceil(x0 / step) * step
    return [float(first + i * step) for i in range(int((x1 - first) // step) + 1)]


def _path(xs: Sequence[float], s: Series, index: int, px: Scale, py: Scale) -> str:
    """One path per series; a missing value breaks the line instead of bridging the gap."""
    commands: list[str] = []
    pen_up = True
    last_y = 0.0
    for x, v in zip(xs, s.values, strict=False):
        if v is None or not math.isfinite(v):
            pen_up = True
            continue
        X, Y = px(x), py(v)  # noqa: N806
        if pen_up:
            commands.append(f"M{X:.1f} {Y:.1f}")
        elif s.step:
            commands.append(f"H{X:.1f}V{Y:.1f}" if last_y != Y else f"H{X:.1f}")
        else:
            commands.append(f"L{X:.1f} {Y:.1f}")
        pen_up, last_y = False, Y
    colour = COLOURS[index % len(COLOURS)]
    return (f'<path class="series" data-i="{index}" fill="none" stroke="{colour}" '
            f'stroke-width="1.6" stroke-linejoin="round" d="{"".join(commands)}"/>')


def _legend(series: Sequence[Series]) -> list[str]:
    if len(series) < 2:
        return []
    out, x = [], W - PAD_R
    for i in reversed(range(len(series))):
        label = series[i].label
        x -= 24 + 6 * len(label)
        colour = COLOURS[i % len(COLOURS)]
        out.append(f'<g class="legend-item" data-i="{i}" role="button" tabindex="0">'
                   f'<rect x="{x}" y="5" width="10" height="10" fill="{colour}"/>'
                   f'<text class="legend" x="{x + 14}" y="14">{escape(label)}</text></g>')
    return out
