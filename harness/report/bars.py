"""Stacked horizontal bars as inline SVG: where each endpoint's cost per call goes.

Each bar is one row's cost split by category, normalised to 100 % (per-call costs of
endpoints differ by orders of magnitude, so absolute lengths would hide the small ones); the
absolute figure is printed at the right of the bar. Hovering a segment shows its value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from harness.report.format import usd

__all__ = ["CATEGORY_COLOURS", "Stack", "stacked_bars"]

W = 960
LABEL_W, NOTE_W, ROW_H, BAR_H, TOP = 250, 150, 26, 16, 30
CATEGORY_COLOURS = {
    "compute": "#2563eb", "memory": "#60a5fa", "egress": "#7c3aed", "database": "#059669",
    "cache": "#34d399", "external": "#dc2626", "observability": "#d97706",
    "requests": "#0891b2", "amortized": "#6b7280", "unattributed": "#d1d5db",
}  # fmt: skip
OTHER_COLOUR = "#9ca3af"
MAX_LABEL = 32


@dataclass(frozen=True)
class Stack:
    """One bar: its label, cost per category, and the text printed after it."""

    label: str
    parts: Mapping[str, float]
    note: str


def colour(category: str) -> str:
    return CATEGORY_COLOURS.get(category, OTHER_COLOUR)


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def _legend(categories: Sequence[str]) -> list[str]:
    out, x = [], LABEL_W
    for name in categories:
        out.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{colour(name)}"/>'
                   f'<text class="legend" x="{x + 14}" y="15">{escape(name)}</text>')
        x += 26 + 7 * len(name)
    return out


def _row(stack: Stack, categories: Sequence[str], y: float) -> list[str]:
    total = sum(v for v in stack.parts.values() if v > 0)
    label = escape(stack.label)
    out = [f'<text class="label" x="{LABEL_W - 8}" y="{y + BAR_H - 4}" text-anchor="end">'
           f"<title>{label}</title>{escape(_short(stack.label))}</text>"]
    x, span = float(LABEL_W), W - LABEL_W - NOTE_W
    for name in categories:
        value = stack.parts.get(name, 0.0)
        if value <= 0 or total <= 0:
            continue
        width = span * value / total
        out.append(f'<rect x="{x:.2f}" y="{y}" width="{width:.2f}" height="{BAR_H}" '
                   f'fill="{colour(name)}"><title>{label} · {escape(name)}: {usd(value)} '
                   f"({value / total * 100:.1f} %)</title></rect>")
        x += width
    out.append(f'<text class="note" x="{W - NOTE_W + 8}" y="{y + BAR_H - 4}">'
               f"{escape(stack.note)}</text>")
    return out


def stacked_bars(rows: Sequence[Stack], title: str) -> Markup:
    """100 % stacked bars, one per row, with a legend of the categories that occur."""
    present = {name for r in rows for name, v in r.parts.items() if v > 0}
    categories = [c for c in CATEGORY_COLOURS if c in present] + sorted(
        present - set(CATEGORY_COLOURS)
    )
    if not categories:
        return Markup('<p class="empty">{}: no cost recorded</p>').format(title)
    height = TOP + ROW_H * len(rows) + 4
    parts = [f'<svg class="bars" viewBox="0 0 {W} {height}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    parts += _legend(categories)
    for i, stack in enumerate(rows):
        parts += _row(stack, categories, TOP + i * ROW_H)
    parts.append("</svg>")
    return Markup("".join(parts))
