"""Crashed replicas in report.html: a marker on every timeline chart and a "crashed" list."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from artifact_factory import GIB, SIMPLE_PRICES, request, samples, service, write_book, write_run

from harness.artifacts import Manifest
from harness.artifacts.rundata import load_run
from harness.cost import build_ledger, load_price_book
from harness.report.charts import Mark, Series, line_chart
from harness.report.oncall import crash_notes
from harness.report.render import render_html
from harness.report.summary import build_summary
from harness.report.timeline import build_timeline

EVIL = '<script>document.title="PWNED"</script>"><img src=x onerror=alert(1)>'
PHASES = (("warmup", 0.0, 2.0, False), ("baseline", 2.0, 12.0, True))
OOM = {"service": "api", "replica": "3f2a9c1d7b4e", "exit_code": 137, "oom_killed": True,
       "last_output": f"GET /alloc 200\n{EVIL}", "at": 6.5, "phase": "baseline"}


def _html(tmp_path: Path, crashes: list[dict[str, Any]]) -> str:
    times = [float(t) for t in range(13)]
    usage = samples("api", times, [0.5 * t for t in times], rss=GIB)
    rows = [request(2.0 + i / 4, "/a", 10.0, "baseline", cpu_ms=4.0) for i in range(40)]
    run_dir = write_run(tmp_path / "run", rows, usage, [service("api", entry=True)], PHASES,
                        crashes=crashes)  # fmt: skip
    book = load_price_book(str(write_book(tmp_path / "books", prices=SIMPLE_PRICES)))
    run = load_run(run_dir)
    ledger = build_ledger(run, book)
    return render_html(run_dir, build_summary(run, ledger), build_timeline(run, ledger),
                       run.manifest, None, ledger)  # fmt: skip


def test_a_crash_is_marked_on_every_chart_and_listed(tmp_path: Path) -> None:
    killed = {"service": "api", "replica": EVIL, "exit_code": -9, "oom_killed": False,
              "last_output": "", "at": 9.0, "phase": "baseline"}
    html = _html(tmp_path, [killed, OOM])
    assert html.count('<svg class="chart"') == 6
    assert html.count('<g class="mark">') == 12  # two crashes on each of the six charts
    listed = re.search(r'<div class="alert" id="crashes">(.*?)</div>', html, re.S)
    assert listed and "2 replicas crashed" in listed.group(1)
    rows = re.findall(r"<tr><td>([^<]*)</td><td class=\"l name\">([^<]*)</td>", listed.group(1))
    assert [at for at, _ in rows] == ["6 s", "9 s"]  # in time order
    assert "exit code 137, OOM-killed" in listed.group(1)
    assert "exit code -9</td>" in listed.group(1)
    assert "GET /alloc 200" in listed.group(1)
    assert "3f2a9c1d7b4e (api) crashed at 6.5 s: exit code 137, OOM-killed" in html
    assert "<script>document" not in html and "<img" not in html  # replica and output escaped


def test_no_crash_no_list_no_marker(tmp_path: Path) -> None:
    html = _html(tmp_path, [])
    assert 'id="crashes"' not in html and 'class="mark"' not in html


def test_crash_records_with_missing_fields_still_show() -> None:
    manifest = Manifest(run_id="r", scenario_name="s", scenario_path="s.yaml", scenario={},
                        runtime="docker", price_book="b", started_at=100.0,
                        crashes=[{"replica": "api-1"}, {**OOM, "at": 101.0}])  # fmt: skip
    first, second = crash_notes(manifest)
    assert (first.at, first.how, first.service) == (0.0, "unknown exit code", "?")
    assert (second.at, second.how) == (1.0, "exit code 137, OOM-killed")
    assert second.mark().label == "✕ 3f2a9c1d7b4e OOM"


def test_marks_sit_at_their_time_and_stay_inside_the_plot() -> None:
    series = [Series("a", [1.0, 2.0, 3.0, 4.0, 5.0], "a")]
    svg = str(line_chart("t", "u", [0, 1, 2, 3, 4], series,
                         marks=[Mark(0, "start", "d"), Mark(4, "end", "d"), Mark(99, "late", "d")]))
    xs = [float(x) for x in re.findall(r'<g class="mark"><title>d</title><line x1="([\d.]+)"', svg)]
    assert xs[0] < xs[1] and xs[1] == xs[2]  # a late crash is drawn at the right edge
