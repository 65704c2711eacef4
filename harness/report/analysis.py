"""Artifacts → Ledger → summary → report, from disk alone (a run can be re-priced later)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness import artifacts as art
from harness.artifacts.recover import recover_parts


@dataclass(frozen=True)
class Analysis:
    summary: dict[str, Any]
    report: Path


def analyse(run_dir: Path, price_book: str | None = None,
            billing_model: str | None = None) -> Analysis:
    """Price the run, write ledger and summary, render the report."""
    from harness.cost import price
    from harness.cost.ledger import write_ledger
    from harness.report.render import render_report
    from harness.report.summary import build_summary, write_summary
    from harness.report.timeline import build_timeline

    art.read_manifest(run_dir)  # a clear error for a foreign or missing run directory first
    recover_parts(run_dir)
    priced = price(run_dir, price_book, billing_model)
    run, book, ledger = priced.run, priced.book, priced.ledger
    write_ledger(run_dir, ledger)
    summary = build_summary(run, ledger)
    write_summary(run_dir, summary)
    report = render_report(run_dir, summary, build_timeline(run, ledger), run.manifest,
                           book_date=str(book.effective_date), ledger=ledger)
    return Analysis(summary, report)


def print_summary(summary: dict[str, Any]) -> None:
    """The final table on the terminal: one row per endpoint, then the overall line."""
    from harness.report.render import num, usd

    table = Table(title=f"cost per call — {summary.get('scenario')} ({summary.get('status')})")
    for col in ("endpoint", "calls", "errors", "p95 ms", "CPU ms/call", "bytes/call",
                "cost/call", "$ per 1M"):
        table.add_column(col, justify="left" if col == "endpoint" else "right")
    for e in summary.get("endpoints", []):
        cost = e.get("cost_per_call_usd")
        table.add_row(str(e["name"]), f"{e['calls']:,}", str(e["errors"]), num(e.get("p95_ms")),
                      _cpu_cell(e), num(e.get("bytes_out_per_call")), usd(cost),
                      f"{(cost or 0) * 1e6:,.2f}")
    total = summary.get("cost_per_call_usd")
    table.add_row("all", f"{summary.get('requests', 0):,}", str(summary.get("errors", 0)),
                  num(summary.get("p95_ms")), "", "", usd(total), f"{(total or 0) * 1e6:,.2f}",
                  style="bold")
    console = Console(width=None if Console().is_terminal else 120)
    console.print(table)
    rate = f"achieved {num(summary.get('achieved_rps'))} req/s"
    if summary.get("asked_rps"):
        rate += f" (asked {num(summary.get('asked_rps'))} req/s)"
    console.print(rate, highlight=False)
    from harness.report.format import blackbox_lines
    from harness.report.telemetry import otel_line

    for fitted in blackbox_lines(summary):
        console.print(fitted, highlight=False)
    if (line := otel_line(summary)) is not None:
        console.print(line, highlight=False)


def _cpu_cell(endpoint: dict[str, Any]) -> str:
    """CPU ms per call; a fitted one is marked ``~`` with its 95 % interval."""
    from harness.report.render import num

    value, ci = endpoint.get("cpu_ms_per_call"), endpoint.get("cpu_ms_ci95")
    if endpoint.get("cpu_ms_source") != "regression" or not ci:
        return num(value)
    return f"~{num(value)} [{num(ci[0])}–{num(ci[1])}]"


def price_run(
    run_dir: Path, price_book: str | None = None, billing_model: str | None = None
) -> dict[str, Any]:
    """Price a finished (or crashed) run from its artifacts; write ledger and summary."""
    from harness.cost import price
    from harness.cost.ledger import write_ledger
    from harness.report.summary import build_summary, write_summary

    priced = price(run_dir, price_book, billing_model)
    run, ledger = priced.run, priced.ledger
    write_ledger(run.run_dir, ledger)
    summary = build_summary(run, ledger)
    write_summary(run.run_dir, summary)
    return summary
