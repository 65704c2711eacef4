"""Flame graph SVGs: well-formed, escaped, bounded, diff colours by change in share."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from harness.profiling import diff_flame_graph_svg, flame_graph_svg

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script>&\x00\x1b'


def frames(svg: str) -> dict[str, ET.Element]:
    """Frame groups by the first line of their tooltip."""
    root = ET.fromstring(svg)
    out = {}
    for group in root.iter(f"{NS}g"):
        title = group.find(f"{NS}title")
        assert title is not None and title.text
        out[title.text.split("\n")[0]] = group
    return out


def fill(group: ET.Element) -> tuple[int, int, int]:
    rect = group.find(f"{NS}rect")
    assert rect is not None
    r, g, b = map(int, re.findall(r"\d+", rect.get("fill", "")))
    return r, g, b


def width(group: ET.Element) -> float:
    rect = group.find(f"{NS}rect")
    assert rect is not None
    return float(rect.get("width", "0"))


def test_flame_graph_is_well_formed_with_widths_and_tooltips() -> None:
    svg = flame_graph_svg({"main;a": 3.0, "main;b": 1.0, "other": 4.0}, "shop · GET /a")
    found = frames(svg)
    assert set(found) == {"all", "main", "a", "b", "other"}
    assert width(found["main"]) == 600 and width(found["a"]) == 450
    tip = found["a"].find(f"{NS}title")
    assert tip is not None and tip.text == "a\n3.000 s (37.50 %)"
    assert "<script" not in svg


def test_hostile_names_are_escaped() -> None:
    svg = flame_graph_svg({f"main;{HOSTILE}": 1.0}, HOSTILE)
    root = ET.fromstring(svg)  # parses: nothing broke out of its element
    assert not list(root.iter(f"{NS}script")) and not list(root.iter("script"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert any(name.startswith("<script>") for name in frames(svg))


def test_narrow_frames_are_pruned() -> None:
    folded = {f"main;f{i}": 1.0 for i in range(5000)} | {"main;big": 5000.0}
    found = frames(flame_graph_svg(folded, "t"))
    assert set(found) == {"all", "main", "big"}  # each f_i is 0.01 % of the total


def test_empty_profile_still_renders() -> None:
    root = ET.fromstring(flame_graph_svg({}, "nothing"))
    assert "no samples" in "".join(root.itertext())
    assert frames(diff_flame_graph_svg({"a": 1.0}, {}, "t")) == {}


def test_long_names_are_truncated_in_the_label_not_the_tooltip() -> None:
    name = "x" * 400
    group = frames(flame_graph_svg({f"main;{name}": 1.0, "other": 50.0}, "t"))[name]
    label = group.find(f"{NS}text")
    assert label is None or (label.text or "").endswith("..")


def test_diff_colours_green_cheaper_grey_same_red_costlier() -> None:
    before = {"main;slow": 5.0, "main;same": 5.0}
    after = {"main;slow": 1.0, "main;same": 1.0, "main;new": 1.0}
    # shares: slow 50 % → 33 % (cheaper), same likewise, new absent → 33 % (+100 %)
    found = frames(diff_flame_graph_svg(before, after, "A vs B"))
    r, g, b = fill(found["slow"])
    assert g > r and g > b  # green
    r, g, b = fill(found["new"])
    assert r > g and r > b  # red
    assert width(found["new"]) == 400  # width follows the after profile
    unchanged = frames(diff_flame_graph_svg(before, before, "same"))
    assert fill(unchanged["slow"]) == (200, 200, 200)
    tip = found["new"].find(f"{NS}title")
    assert tip is not None and "before absent" in (tip.text or "")


def test_diff_clamps_at_plus_minus_100_percent() -> None:
    before = {"a": 1.0, "b": 99.0}
    after = {"a": 50.0, "b": 50.0}  # a: 1 % → 50 % (+4900 %)
    assert fill(frames(diff_flame_graph_svg(before, after, "t"))["a"]) == (222, 45, 38)
