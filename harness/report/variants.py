"""Side by side: the variants of one scenario, each from its own run directory's summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
from rich.console import Console
from rich.table import Table

from harness.artifacts import SUMMARY
from harness.util import atomic_write_json, atomic_write_text

VARIANTS_JSON = "variants.json"
VARIANTS_HTML = "variants.html"


def _load(run_dir: Path, name: str) -> dict[str, Any]:
    path = run_dir / name / SUMMARY
    if not path.is_file():
        return {"variant": name, "status": "no summary (no request recorded)", "endpoints": []}
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return summary | {"variant": name}


def write_variant_summary(run_dir: Path, names: list[str]) -> Path:
    """Write ``variants.json`` and ``variants.html``, print the table, return the HTML path."""
    rows = [_load(run_dir, n) for n in names]
    endpoints = sorted({e["name"] for r in rows for e in r.get("endpoints", [])})
    grid = {r["variant"]: {e["name"]: e for e in r.get("endpoints", [])} for r in rows}
    atomic_write_json(run_dir / VARIANTS_JSON, {"variants": [
        {k: r.get(k) for k in ("variant", "status", "requests", "cost_per_call_usd",
                               "cost_per_call_ci95_usd", "p95_ms", "error_rate", "endpoints")}
        for r in rows]})
    _print(rows, endpoints, grid)
    env = jinja2.Environment(loader=jinja2.PackageLoader("harness", "report/templates"),
                             autoescape=True)
    html = env.get_template("variants.html.j2").render(rows=rows, endpoints=endpoints, grid=grid,
                                                        title=run_dir.name)
    path = run_dir / VARIANTS_HTML
    atomic_write_text(path, html)
    return path


def _per_million(value: float | None) -> str:
    return "–" if value is None else f"${value * 1e6:,.2f}"


def _print(rows: list[dict[str, Any]], endpoints: list[str],
           grid: dict[str, dict[str, dict[str, Any]]]) -> None:
    table = Table(title="cost per million calls, by variant")
    table.add_column("endpoint")
    for r in rows:
        table.add_column(str(r["variant"]), justify="right")
    for name in endpoints:
        table.add_row(name, *[_per_million(grid[r["variant"]].get(name, {}).get(
            "cost_per_call_usd")) for r in rows])
    table.add_row("all", *[_per_million(r.get("cost_per_call_usd")) for r in rows], style="bold")
    Console(width=120).print(table)
