"""report.html rendering: views, escaping, CSP, size bounds, fault windows and anomalies."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from artifact_factory import GIB, SIMPLE_PRICES, request, samples, service, write_book, write_run

from harness.artifacts import FAULTS, Manifest
from harness.artifacts.rundata import load_run
from harness.cost import build_ledger, load_price_book
from harness.cost.ledger import Ledger
from harness.profiling.layout import INDEX, PROFILES_DIR, ProfileEntry, ProfileIndex
from harness.report.format import money, num, pct, seconds, usd
from harness.report.render import render_html, render_report
from harness.report.summary import build_summary
from harness.report.timeline import build_timeline

EVIL = '<script>document.title="PWNED"</script>"><img src=x onerror=alert(1)>'
PHASES = (("warmup", 0.0, 2.0, False), ("baseline", 2.0, 8.0, True),
          ("slow", 8.0, 14.0, True))  # fmt: skip


@dataclass
class Priced:
    run_dir: Path
    manifest: Manifest
    ledger: Ledger
    summary: dict[str, Any]
    timeline: pd.DataFrame

    def html(self, ledger: bool = True) -> str:
        return render_html(self.run_dir, self.summary, self.timeline, self.manifest,
                           "2026-01-01", self.ledger if ledger else None)  # fmt: skip


def _requests() -> list[dict[str, Any]]:
    rows = [request(0.5, "/a", phase="warmup")]
    for i in range(24):
        t = 2.0 + i / 2
        phase = "baseline" if t < 8 else "slow"
        rows.append(request(t, "/a", 10.0, phase, cpu_ms=4.0, db_reads=1, tenant="acme"))
        rows.append(request(t + 0.1, EVIL, 20.0, phase, cpu_ms=12.0, bytes_out=5000,
                            tenant=EVIL, log_bytes=100))  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def priced(tmp_path_factory: pytest.TempPathFactory) -> Priced:
    """One priced run shared by the module's tests (they must leave it as they found it)."""
    tmp_path = tmp_path_factory.mktemp("report")
    times = [float(t) for t in range(15)]
    usage = samples("api", times, [0.5 * t for t in times], rss=GIB)
    run_dir = write_run(tmp_path / "run", _requests(), usage, [service("api", entry=True)],
                        PHASES, scenario_name=EVIL, scenario={"description": EVIL})  # fmt: skip
    faults = [{"fault": EVIL, "kind": "downstream", "target": "api", "action": a, "status": "ok",
               "start": t, "end": t + 0.1, "error": None}
              for a, t in (("inject", 8), ("revert", 14))]  # fmt: skip
    (run_dir / FAULTS).write_text("".join(json.dumps(f) + "\n" for f in faults), "utf-8")
    book = load_price_book(str(write_book(tmp_path / "books", prices=SIMPLE_PRICES)),
                           {"db_read": 0.0})  # fmt: skip
    run = load_run(run_dir)
    ledger = build_ledger(run, book)
    return Priced(run_dir, run.manifest, ledger, build_summary(run, ledger),
                  build_timeline(run, ledger))  # fmt: skip


def _by_id(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, element_id
    return match.group(1)


def test_executive_figures_are_the_summary_values(priced: Priced) -> None:
    html, s = priced.html(), priced.summary
    assert _by_id(html, "cost-per-call") == usd(s["cost_per_call_usd"])
    assert _by_id(html, "cost-per-million") == money(s["cost_per_million_calls_usd"])
    assert _by_id(html, "total-cost") == money(s["total_cost_usd"])
    assert _by_id(html, "requests") == f"{s['requests']:,}" == "48"


def test_user_strings_are_escaped_everywhere(priced: Priced) -> None:
    html = priced.html()
    assert "<script>document" not in html and "<img" not in html
    escaped = "&lt;script&gt;document.title=&#34;PWNED&#34;&lt;/script&gt;"
    assert html.count(escaped) >= 8  # title, header, tables, tabs, bars, fault band, ...
    data = re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>',
                     html, re.S)  # fmt: skip
    assert data and "<" not in data.group(1)
    assert json.loads(data.group(1))["phase"][3] == "baseline"


def test_only_the_reports_own_script_may_run(priced: Priced) -> None:
    html = priced.html()
    csp = re.search(r'Content-Security-Policy" content="([^"]*)"', html)
    assert csp and "default-src 'none'" in csp.group(1)
    allowed = re.findall(r"'(sha256-[^']+)'", csp.group(1))
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 1 and len(allowed) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert allowed == [f"sha256-{digest}"]
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert all(r.startswith("#") for r in refs), refs
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)


def test_views_and_debug_details(priced: Priced) -> None:
    html = priced.html()
    for anchor in ("executive", "oncall", "debug", "assumptions", "costliest", "faults"):
        assert f'id="{anchor}"' in html
    assert html.count('<svg class="chart"') == 6
    assert "memory-time attributed" in html and "Costliest request groups" in html
    assert "effective 2026-01-01" in html and 'id="flames"' not in html


def test_renders_without_a_ledger(priced: Priced) -> None:
    """The old call (no ledger) still renders every view, minus the ledger-only parts."""
    path = render_report(priced.run_dir, priced.summary, priced.timeline, priced.manifest,
                         book_date="2026-01-01")  # fmt: skip
    html = path.read_text(encoding="utf-8")
    assert _by_id(html, "cost-per-call") == usd(priced.summary["cost_per_call_usd"])
    assert 'id="costliest"' not in html and "memory-time attributed" not in html
    assert html.count('<svg class="chart"') == 6


@pytest.fixture
def profiles(priced: Priced) -> Iterator[Path]:
    directory = priced.run_dir / PROFILES_DIR
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_flame_graphs_when_profiles_exist(priced: Priced, profiles: Path) -> None:
    directory = profiles
    (directory / "api").mkdir(parents=True)
    (directory / "api" / "a.folded").write_text(f"main;{EVIL} 3000000\nmain;idle 1000000\n")
    entry = ProfileEntry(service="api", phase="baseline", endpoint=EVIL, cpu_s=0.004, uploads=1,
                         folded="api/a.folded", pprof=None, first_arrival=3, last_arrival=4)
    (directory / INDEX).write_text(ProfileIndex(uploads=1, entries=[entry]).model_dump_json())
    html = priced.html()
    assert 'id="flames"' in html and 'class="flame-graph"' in html
    assert "<script>document" not in html and "0.003" in html

    (directory / INDEX).write_text("{not json")
    html = priced.html()
    assert "Profiles could not be read" in html and 'class="flame-graph"' not in html


def test_long_runs_are_bucketed_so_the_size_is_bounded(priced: Priced) -> None:
    n = 86_400  # a day, second by second
    rng = np.random.default_rng(0)
    day = pd.DataFrame({
        "t": np.arange(n), "phase": "baseline", "rps": rng.uniform(900, 1100, n),
        "p95_ms": rng.uniform(20, 80, n), "error_rate": rng.uniform(0, 0.01, n),
        "replicas": 4.0, "cost_per_call_usd": rng.uniform(1e-6, 2e-6, n),
        "burn_usd_per_hour": rng.uniform(3, 6, n),
    })  # fmt: skip
    small, large = priced.html(), render_html(priced.run_dir, priced.summary, day,
                                              priced.manifest, None, priced.ledger)
    assert len(large.encode()) < len(small.encode()) + 400_000
    assert "120-second buckets" in large


def test_format_helpers() -> None:
    assert usd(0.000387) == "$0.000387" and usd(0.25) == "$0.2500" and usd(None) == "–"
    assert money(30139.19) == "$30,139.19" and money(0.0012) == "$0.0012"
    assert num(1234.5) == "1,234" and num(1.234) == "1.23" and num(float("nan")) == "–"
    assert pct(0.0155) == "1.6 %" and seconds(75) == "75 s" and seconds(725) == "12:05"
    assert seconds(7205) == "2:00:05" and seconds(60, clock=True) == "1:00"


def test_a_run_without_requests_still_renders(tmp_path: Path) -> None:
    times = [float(t) for t in range(15)]
    usage = samples("api", times, [0.5 * t for t in times], rss=GIB)
    run_dir = write_run(tmp_path / "empty", [], usage, [service("api", entry=True)], PHASES)
    book = load_price_book(str(write_book(tmp_path / "books", prices=SIMPLE_PRICES)))
    run = load_run(run_dir)
    ledger = build_ledger(run, book)
    html = render_html(run_dir, build_summary(run, ledger), build_timeline(run, ledger),
                       run.manifest, None, ledger)  # fmt: skip
    assert _by_id(html, "requests") == "0" and "No endpoint was priced." in html
    assert "No fault was injected." in html
