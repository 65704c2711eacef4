"""report.html in a real browser: offline, no console errors, charts drawn, figures from
summary.json, interactivity working, and no injected script running."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cdp import Browser, Page
from PIL import Image
from report_run import HOSTILE_IMG, HOSTILE_SCRIPT, SCENARIO, RenderedRun, build

from harness.report.format import money, usd

SERIES_BLUE = (37, 99, 235)  # charts.COLOURS[0]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> RenderedRun:
    return build(tmp_path_factory.mktemp("runs") / "hostile-run")


@pytest.fixture
def page(browser: Browser, rendered: RenderedRun) -> Iterator[Page]:
    tab = browser.page()
    try:
        tab.open(rendered.report)
        yield tab
    finally:
        tab.close()


def _text(page: Page, selector: str) -> str:
    return str(page.evaluate(f"document.querySelector({json.dumps(selector)}).textContent"))


def _rect(page: Page, selector: str, index: int = 0) -> dict[str, float]:
    """Document coordinates of the index-th match (scrolled into view first)."""
    js = (f"(() => {{ const el = document.querySelectorAll({json.dumps(selector)})[{index}];"
          "el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect();"
          "return {x: r.x, y: r.y, vx: r.x, vy: r.y, width: r.width, height: r.height,"
          "sy: window.scrollY}; })()")  # fmt: skip
    rect: dict[str, float] = page.evaluate(js)
    return rect


def _blue_pixels(png: bytes) -> tuple[int, int]:
    """(pixels of the series colour, pixels that are not near-white) in a PNG."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    blue = np.abs(pixels - np.array(SERIES_BLUE)).max(axis=2) < 60
    ink = pixels.min(axis=2) < 235
    return int(blue.sum()), int(ink.sum())


def test_opens_offline_without_errors_or_requests(page: Page, rendered: RenderedRun) -> None:
    assert page.errors() == []
    assert page.requests() == [rendered.report.resolve().as_uri()]
    assert page.evaluate("document.documentElement.classList.contains('js')"), \
        "the report's own script did not run (CSP hash mismatch?)"


def test_key_figures_are_summary_json_values(page: Page, rendered: RenderedRun) -> None:
    s = rendered.summary
    assert _text(page, "#cost-per-call") == usd(s["cost_per_call_usd"])
    assert _text(page, "#cost-per-million") == money(s["cost_per_million_calls_usd"])
    assert _text(page, "#monthly-projection") == money(s["monthly_projection_usd"])
    assert _text(page, "#requests") == f"{s['requests']:,}"
    assert _text(page, "#total-cost") == money(s["total_cost_usd"])
    assert s["cost_per_call_usd"] > 0 and s["requests"] == 1100


def test_charts_are_drawn(page: Page) -> None:
    count = page.evaluate("document.querySelectorAll('#oncall svg.chart').length")
    assert count == 6
    for i in range(count):
        rect = _rect(page, "#oncall svg.chart", i)
        assert rect["width"] > 450 and rect["height"] > 120
        clip = {"x": rect["x"], "y": rect["y"] + rect["sy"], "width": rect["width"],
                "height": rect["height"]}  # fmt: skip
        blue, ink = _blue_pixels(page.screenshot(clip))
        area = rect["width"] * rect["height"]
        assert blue > 150, f"chart {i}: its line is not drawn ({blue} px)"
        assert ink > 0.03 * area, f"chart {i}: nearly blank ({ink} of {area:.0f} px)"
    bars = _rect(page, "#categories svg.bars")
    clip = {"x": bars["x"], "y": bars["y"] + bars["sy"], "width": bars["width"],
            "height": bars["height"]}  # fmt: skip
    assert _blue_pixels(page.screenshot(clip))[1] > 0.1 * bars["width"] * bars["height"]


def test_anomaly_and_fault_are_flagged(page: Page) -> None:
    alert = _text(page, "#anomalies")
    assert "2 cost anomalies" in alert and "payments-slow" in alert
    assert page.evaluate("document.querySelectorAll('#oncall .band.fault').length") == 6
    assert page.evaluate("document.querySelectorAll('#oncall .band.anomaly').length") == 2


def test_no_injected_script_runs(page: Page, rendered: RenderedRun) -> None:
    run_id = rendered.summary["run_id"]
    assert page.evaluate("document.title") == f"Cost per call — {SCENARIO} — {run_id}"
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('img, [onerror], [onload]').length") == 0
    body = str(page.evaluate("document.body.innerText"))
    assert HOSTILE_SCRIPT in body and HOSTILE_IMG in body  # shown as text, verbatim
    assert page.errors() == []


def test_crosshair_tooltip_tabs_and_legend(page: Page) -> None:
    rect = _rect(page, "#oncall svg.chart", 0)
    page.mouse("mouseMoved", rect["vx"] + rect["width"] * 0.6, rect["vy"] + rect["height"] / 2)
    assert page.evaluate("document.getElementById('tip').hidden") is False
    tip = _text(page, "#tip")
    assert " s · payments-slow" in tip and "req/s: 20 req/s" in tip
    crosses = page.evaluate("[...document.querySelectorAll('#oncall .cross')]"
                            ".map(c => c.style.visibility)")  # fmt: skip
    assert crosses == ["visible"] * 6

    assert page.evaluate("document.getElementById('endpoint-1').hidden") is True
    tab = _rect(page, "[data-tab='endpoint-1']")
    page.mouse("mousePressed", tab["vx"] + 10, tab["vy"] + tab["height"] / 2)
    page.mouse("mouseReleased", tab["vx"] + 10, tab["vy"] + tab["height"] / 2)
    assert page.evaluate("document.getElementById('endpoint-1').hidden") is False
    assert page.evaluate("document.getElementById('endpoint-0').hidden") is True

    item = "document.querySelector('#oncall .legend-item[data-i=\"0\"]')"
    series = f"{item}.ownerSVGElement.querySelector('.series[data-i=\"0\"]').style.display"
    page.evaluate(f"{item}.dispatchEvent(new MouseEvent('click'))")
    assert page.evaluate(series) == "none"
    page.evaluate(f"{item}.dispatchEvent(new MouseEvent('click'))")
    assert page.evaluate(series) == ""
    assert page.errors() == []


def test_the_probes_do_catch_a_script_that_runs(browser: Browser, tmp_path: Path) -> None:
    """Negative control: the same checks fail on a page whose injected script does run, and
    a CSP violation is reported as an error."""
    unsafe = tmp_path / "unsafe.html"
    unsafe.write_text(f"<!doctype html><title>t</title><body>{HOSTILE_IMG[2:]}{SCENARIO}",
                      encoding="utf-8")  # fmt: skip
    tab = browser.page()
    tab.open(unsafe)
    assert tab.evaluate("document.title") == "PWNED"
    assert tab.evaluate("typeof window.__pwned") == "number"
    tab.close()

    guarded = tmp_path / "guarded.html"
    csp = "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">"
    guarded.write_text(f"<!doctype html>{csp}<title>t</title><body>{SCENARIO}", "utf-8")
    tab = browser.page()
    tab.open(guarded)
    assert tab.evaluate("document.title") == "t"
    assert any("Content Security Policy" in e for e in tab.errors())
    tab.close()
