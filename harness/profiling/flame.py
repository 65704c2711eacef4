"""Flame graphs and diff flame graphs as self-contained inline SVG (no script, no fonts).

Input is folded stacks: ``{"root;child;leaf": value}`` (CPU seconds). The root is drawn at
the top (as Pyroscope draws it); each frame's width is its total value. Hovering a frame
shows its ``<title>``: function, value and share. Frames narrower than 0.1 % of the total
are pruned (with their callees), which bounds the size of the SVG: at most 1000 frames
per depth. Every name is escaped, so a hostile function name cannot inject markup.

The diff graph is laid out by the *after* profile; a frame's colour is its change in share
``(pct_after − pct_before) / pct_before``, clamped to ±100 %: green is cheaper, grey is
unchanged, red is costlier (a frame absent before counts as +100 %). Frames are matched by
their whole stack path, as Pyroscope's diff view does.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

__all__ = ["diff_flame_graph_svg", "flame_graph_svg"]

WIDTH = 1200
FRAME_H = 17
FONT_PX = 11
CHAR_W = FONT_PX * 0.62  # monospace advance, a little generous
TOP = 44  # room for the title and the legend
MIN_SHARE = 0.001
GREY, RED, GREEN = (200, 200, 200), (222, 45, 38), (49, 163, 84)
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


@dataclass
class _Node:
    name: str
    total: float = 0.0
    children: dict[str, _Node] = field(default_factory=dict)


@dataclass(frozen=True)
class _Frame:
    node: _Node
    path: tuple[str, ...]
    depth: int
    offset: float  # value units from the left edge


def _tree(folded: Mapping[str, float]) -> _Node:
    root = _Node("all")
    for stack, value in folded.items():
        if value <= 0:
            continue
        root.total += value
        node = root
        for name in stack.split(";"):
            node = node.children.setdefault(name, _Node(name))
            node.total += value
    return root


def _frames(root: _Node) -> Iterator[_Frame]:
    """Every frame wide enough to draw, depth first, children ordered by name."""
    floor = root.total * MIN_SHARE
    stack = [_Frame(root, (), 0, 0.0)]
    while stack:
        frame = stack.pop()
        yield frame
        offset = frame.offset
        for name in sorted(frame.node.children):
            child = frame.node.children[name]
            if child.total >= floor:
                stack.append(_Frame(child, (*frame.path, name), frame.depth + 1, offset))
            offset += child.total


def _lookup(root: _Node, path: tuple[str, ...]) -> float:
    node: _Node | None = root
    for name in path:
        node = node.children.get(name) if node is not None else None
    return node.total if node is not None else 0.0


def _text(value: str) -> str:
    return escape(_INVALID_XML.sub("\ufffd", value), {'"': "&quot;"})


def _hash_colour(name: str) -> tuple[int, int, int]:
    h = zlib.crc32(name.encode("utf-8", "replace"))
    return 205 + h % 50, 90 + (h >> 8) % 110, 40 + (h >> 16) % 50


def _diff_colour(change: float) -> tuple[int, int, int]:
    change = max(-1.0, min(1.0, change))
    (r0, g0, b0), (r1, g1, b1), t = GREY, (RED if change > 0 else GREEN), abs(change)
    return round(r0 + (r1 - r0) * t), round(g0 + (g1 - g0) * t), round(b0 + (b1 - b0) * t)


def _frame_svg(frame: _Frame, scale: float, colour: tuple[int, int, int], tip: str) -> str:
    x, w = frame.offset * scale, frame.node.total * scale
    y = TOP + frame.depth * FRAME_H
    fits = int((w - 6) / CHAR_W)
    label = frame.node.name if len(frame.node.name) <= fits else frame.node.name[: fits - 2] + ".."
    text = (f'<text x="{x + 3:.1f}" y="{y + FRAME_H - 5}">{_text(label)}</text>'
            if fits >= 3 else "")  # fmt: skip
    r, g, b = colour
    return (f'<g><title>{_text(tip)}</title><rect x="{x:.2f}" y="{y}" width="{w:.2f}" '
            f'height="{FRAME_H - 1}" rx="2" fill="rgb({r},{g},{b})"/>{text}</g>')  # fmt: skip


def _document(title: str, legend: str, body: list[str], depth: int) -> str:
    height = TOP + (depth + 1) * FRAME_H + 4
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" class="flame-graph" width="100%" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="monospace" font-size="{FONT_PX}" '
        f'role="img"><title>{_text(title)}</title>',
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="{WIDTH / 2}" y="17" font-size="15" text-anchor="middle">{_text(title)}</text>',
        f'<text x="{WIDTH / 2}" y="34" text-anchor="middle" fill="#555">{_text(legend)}</text>',
        *body,
        "</svg>",
    ])  # fmt: skip


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if value >= 0.001 else f"{value * 1e6:.0f} µs"


def flame_graph_svg(folded: Mapping[str, float], title: str) -> str:
    """A flame graph of ``folded`` (values in CPU seconds) as an inline SVG document."""
    root = _tree(folded)
    if root.total <= 0:
        return _document(title, "no samples", [], 0)
    scale, body, depth = WIDTH / root.total, [], 0
    for frame in _frames(root):
        share = frame.node.total / root.total * 100
        tip = f"{frame.node.name}\n{_seconds(frame.node.total)} ({share:.2f} %)"
        colour = GREY if frame.depth == 0 else _hash_colour(frame.node.name)
        body.append(_frame_svg(frame, scale, colour, tip))
        depth = max(depth, frame.depth)
    legend = f"total {_seconds(root.total)} CPU · width = share of CPU · hover for details"
    return _document(title, legend, body, depth)


def diff_flame_graph_svg(before: Mapping[str, float], after: Mapping[str, float],
                         title: str) -> str:  # fmt: skip
    """A diff flame graph: widths from ``after``, colour from the change in share."""
    left, right = _tree(before), _tree(after)
    legend = ("width = after · green = cheaper, grey = same, red = costlier "
              "(share of CPU, ±100 % clamp)")  # fmt: skip
    if right.total <= 0:
        return _document(title, "no samples after", [], 0)
    scale, body, depth = WIDTH / right.total, [], 0
    for frame in _frames(right):
        pct_after = frame.node.total / right.total * 100
        pct_before = _lookup(left, frame.path) / left.total * 100 if left.total > 0 else 0.0
        change = (pct_after - pct_before) / pct_before if pct_before > 0 else 1.0
        was = f"{pct_before:.2f} %" if pct_before > 0 else "absent"
        tip = (f"{frame.node.name}\nbefore {was} → after {pct_after:.2f} % "
               f"({change * 100:+.0f} %)\nafter {_seconds(frame.node.total)}")  # fmt: skip
        colour = GREY if frame.depth == 0 else _diff_colour(change)
        body.append(_frame_svg(frame, scale, colour, tip))
        depth = max(depth, frame.depth)
    return _document(title, legend, body, depth)
