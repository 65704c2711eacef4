"""Render ``report.html`` from a run's summary, timeline and manifest (rendering only)."""

from __future__ import annotations

import importlib.metadata
import math
import time
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from harness.artifacts import REPORT, Manifest
from harness.report.charts import Band, Series, line_chart
from harness.util import atomic_write_text

COUNTERS = ["db_reads_per_call", "db_writes_per_call", "cache_hits_per_call",
            "cache_misses_per_call", "external_calls_per_call", "retries_per_call",
            "log_bytes_per_call"]
BAR_PX = 120


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("harness", "report/templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals.update(usd=usd, money=money, num=num, pct=pct)
    return env


def usd(value: float | None) -> str:
    """A per-call price: enough significant digits to compare tiny numbers."""
    if value is None or not math.isfinite(value):
        return "–"
    return "$0" if value == 0 else f"${value:.3g}" if abs(value) < 0.01 else f"${value:,.4f}"


def money(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"${value:,.2f}" if abs(value) >= 0.01 else f"${value:.3g}"


def num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _bars(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    top = max((r.get(key) or 0 for r in rows), default=0) or 1
    return [r | {"bar": round(BAR_PX * (r.get(key) or 0) / top)} for r in rows]


UNSHADED = frozenset({"baseline", "recovery", "startup", "teardown"})


def _bands(manifest: Manifest, t0: float) -> list[Band]:
    """Warm-up and fault windows are shaded and labelled; baseline and recovery are not."""
    return [Band(p.start - t0, (p.end or p.start) - t0, p.name) for p in manifest.phases
            if p.name not in UNSHADED]


def _charts(timeline: pd.DataFrame, manifest: Manifest, t0: float) -> list[Any]:
    if timeline.empty:
        return []
    xs = [float(x) for x in timeline["t"]]
    bands = _bands(manifest, t0)

    def col(name: str, scale: float = 1.0) -> list[float | None]:
        return [None if pd.isna(v) else float(v) * scale for v in timeline[name]]

    return [
        line_chart("Throughput", "req/s", xs, [Series("req/s", col("rps"))], bands),
        line_chart("Latency p95", "ms", xs, [Series("p95", col("p95_ms"))], bands),
        line_chart("Cost per call", "USD per 1M calls", xs,
                   [Series("cost per 1M calls", col("cost_per_call_usd", 1e6))], bands),
        line_chart("Error rate", "%", xs, [Series("errors", col("error_rate", 100))], bands),
    ]


def _categories(summary: dict[str, Any]) -> list[dict[str, Any]]:
    cats = summary.get("categories") or {}
    total = sum((c.get("usd") or 0) for c in cats.values()) or 1
    rows = [{"name": k, "usd": v.get("usd"), "per_call": v.get("per_call_usd"),
             "share": (v.get("usd") or 0) / total} for k, v in cats.items() if v.get("usd")]
    return _bars(sorted(rows, key=lambda r: -(r["usd"] or 0)), "usd")


def render_report(run_dir: Path, summary: dict[str, Any], timeline: pd.DataFrame,
                  manifest: Manifest, book_date: str | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` atomically and return its path."""
    endpoints = _bars(list(summary.get("endpoints", [])), "cost_per_call_usd")
    counters = [c for c in COUNTERS if any(e.get(c) is not None for e in endpoints)]
    html = _env().get_template("report.html.j2").render(
        s=summary, endpoints=endpoints, counters=counters,
        charts=_charts(timeline, manifest, manifest.started_at),
        categories=_categories(summary), phases=summary.get("phases") or [],
        attribution=sorted((summary.get("attribution") or {}).items()),
        description=manifest.scenario.get("description"), error=manifest.error,
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(manifest.started_at)),
        generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        version=_version(), book_date=book_date,
    )
    path = run_dir / REPORT
    atomic_write_text(path, html)
    return path


def _version() -> str:
    try:
        return importlib.metadata.version("cost-harness")
    except importlib.metadata.PackageNotFoundError:
        return "dev"
