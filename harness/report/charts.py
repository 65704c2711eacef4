"""Inline SVG charts: self-contained (no script, no network), hover values via <title>.

Written by hand because the report must open offline with nothing to fetch, and a small SVG
polyline per series is all a 1-second timeline needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

W, H = 720, 200
PAD_L, PAD_R, PAD_T, PAD_B = 64, 12, 24, 28
Scale = Callable[[float], float]
COLOURS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2"]


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Band:
    """A shaded span of the x axis (a phase or a fault window)."""

    start: float
    end: float
    label: str


def _nice_max(value: float) -> float:
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return float(step * exp)
    return 10.0 * exp


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}"
    return f"{value:.3g}"


def line_chart(title: str, unit: str, xs: Sequence[float], series: Sequence[Series],
               bands: Sequence[Band] = ()) -> Markup:
    """An SVG line chart of one or more series over x (seconds)."""
    finite = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    if not xs or not finite:
        return Markup('<p class="empty">{}: no data</p>').format(title)
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    ymax = _nice_max(max(finite))

    def px(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * (W - PAD_L - PAD_R)

    def py(y: float) -> float:
        return H - PAD_B - (y / ymax) * (H - PAD_T - PAD_B)

    parts = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    parts += _bands(bands, px)
    parts += _axes(ymax, x0, x1, unit, py, px)
    for i, s in enumerate(series):
        parts += _polyline(xs, s, COLOURS[i % len(COLOURS)], px, py, unit)
    parts += _legend(series)
    parts.append("</svg>")
    return Markup("".join(parts))


def _bands(bands: Sequence[Band], px: Scale) -> list[str]:
    out = []
    for b in bands:
        x_a, x_b = px(b.start), px(b.end)
        width = max(x_b - x_a, 1)
        out.append(f'<g class="band"><rect x="{x_a:.1f}" y="{PAD_T}" width="{width:.1f}"'
                   f' height="{H - PAD_T - PAD_B}"><title>{escape(b.label)}</title></rect>'
                   f'<text x="{x_a + 3:.1f}" y="{PAD_T + 11}">{escape(b.label)}</text></g>')
    return out


def _axes(ymax: float, x0: float, x1: float, unit: str, py: Scale, px: Scale) -> list[str]:
    out = []
    for frac in (0, 0.25, 0.5, 0.75, 1):
        y = py(ymax * frac)
        out.append(f'<line class="grid" x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{PAD_L - 4}" y="{y + 4:.1f}" text-anchor="end">'
                   f"{escape(_fmt(ymax * frac))}</text>")
    for frac in (0, 0.5, 1):
        xv = x0 + (x1 - x0) * frac
        out.append(f'<text class="tick" x="{px(xv):.1f}" y="{H - 8}" '
                   f'text-anchor="middle">{xv:.0f} s</text>')
    out.append(f'<text class="unit" x="4" y="{PAD_T - 8}">{escape(unit)}</text>')
    return out


def _polyline(xs: Sequence[float], s: Series, colour: str, px: Scale, py: Scale,
              unit: str) -> list[str]:
    pts, dots = [], []
    for x, v in zip(xs, s.values, strict=False):
        if v is None or not math.isfinite(v):
            continue
        X, Y = px(x), py(v)  # noqa: N806
        pts.append(f"{X:.1f},{Y:.1f}")
        dots.append(f'<circle cx="{X:.1f}" cy="{Y:.1f}" r="3"><title>{escape(s.label)} at '
                    f"{x:.0f} s: {escape(_fmt(v))} {escape(unit)}</title></circle>")
    return [f'<g class="series" stroke="{colour}" fill="{colour}"><polyline fill="none" '
            f'stroke-width="1.6" points="{" ".join(pts)}"/>', *dots, "</g>"]


def _legend(series: Sequence[Series]) -> list[str]:
    if len(series) < 2:
        return []
    out, x = [], PAD_L
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        out.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{colour}"/>'
                   f'<text class="legend" x="{x + 14}" y="13">{escape(s.label)}</text>')
        x += 24 + 7 * len(s.label)
    return out
