"""Render a comparison: ``compare.html`` (Jinja2, autoescaped), ``compare.md`` (a PR comment)
and ``compare.json``, written side by side."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from harness.compare import CompareReport, Comparison, Row, compare_json
from harness.compare.stats import Estimate
from harness.gate.output import EMOJI, LABELS, ci_text, clean, md, rel, scope_text, signed, value

SUMMARY_METRICS = ("cost_per_call", "p95_ms", "error_rate")


@dataclass(frozen=True)
class CompareFiles:
    html: Path
    markdown: Path
    json: Path


def files_for(html: Path) -> CompareFiles:
    """``X.html`` → X.html, X.md, X.json."""
    return CompareFiles(html, html.with_suffix(".md"), html.with_suffix(".json"))


def _change(est: Estimate) -> str:
    return f"{rel(est.rel)} ({ci_text(est.rel_ci, rel)})" if est.rel is not None else "–"


def _find(comparison: Comparison, kind: str, name: str | None, metric: str) -> Row | None:
    for row in comparison.rows:
        scope = row.estimate.scope
        if scope.kind == kind and scope.name == name and row.estimate.metric == metric:
            return row
    return None


def _md_section(report: CompareReport, comparison: Comparison) -> list[str]:
    ref, other = report.reference, comparison.other
    lines = [f"#### {md(ref.label)} → {md(other.label)}", "",
             "| | cost per call | change (CI) | p95 | change (CI) | error rate |",
             "|---|--:|--:|--:|--:|--:|"]  # fmt: skip
    scopes = [r.estimate.scope for r in comparison.rows
              if r.estimate.metric == "cost_per_call" and r.estimate.scope.kind != "category"]
    for scope in scopes:
        cells = [scope_text(scope)]
        for metric in SUMMARY_METRICS:
            row = _find(comparison, scope.kind, scope.name, metric)
            if row is None:
                cells += ["–"] if metric == "error_rate" else ["–", "–"]
                continue
            est = row.estimate
            pair = f"{value(metric, est.base)} → {value(metric, est.new)}"
            if metric == "error_rate":
                cells.append(pair)
            else:
                cells += [pair, f"{_change(est)} {EMOJI[row.verdict]}"]
        lines.append("| " + " | ".join(cells) + " |")
    categories = [r for r in comparison.rows_for("category")
                  if (r.estimate.base or 0) > 0 or (r.estimate.new or 0) > 0]  # fmt: skip
    if categories:
        lines += ["", "| cost category (per call) | " + md(ref.label) + " | " + md(other.label)
                  + " | change (CI) |", "|---|--:|--:|--:|"]  # fmt: skip
        for row in categories:
            est = row.estimate
            lines.append(f"| {md(est.scope.name)} | {value(est.metric, est.base)} | "
                         f"{value(est.metric, est.new)} | {_change(est)} {EMOJI[row.verdict]} |")
    lines += [""] + [f"> {md(note)}" for note in comparison.notes]
    return lines


def compare_markdown(report: CompareReport) -> str:
    """The Markdown summary of every comparison (fit for a PR comment)."""
    share = f"{report.confidence * 100:g} %"
    lines = [f"### Cost comparison — {md(report.reference.scenario)}", ""]
    for comparison in report.comparisons:
        lines += _md_section(report, comparison)
    lines.append(
        f"<sub>{EMOJI['worse']} worse · {EMOJI['better']} better: the {share} CI of the change "
        f"excludes 0 and the change is at least {report.min_effect * 100:g} %; "
        f"{EMOJI['same']} no significant change. Overall rows at {md(report.reference.label)}'s "
        f"traffic mix; priced with {md(report.pricing.price_book)} / "
        f"{md(report.pricing.billing_model or 'per-service')} billing.</sub>"
    )
    return "\n".join(lines) + "\n"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("harness", "report/templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)  # fmt: skip
    env.globals.update(value=value, signed=signed, rel=rel, ci_text=ci_text, labels=LABELS)
    return env


def _grid(report: CompareReport) -> list[dict[str, Any]]:
    """Side-by-side cost per call: one row per scope, one cell per other side."""
    first = report.comparisons[0]
    rows = []
    for row in first.rows:
        est = row.estimate
        if est.metric != "cost_per_call":
            continue
        cells = [_find(c, est.scope.kind, est.scope.name, "cost_per_call")
                 for c in report.comparisons]  # fmt: skip
        rows.append({"scope": est.scope, "base": est.base, "cells": cells})
    return rows


def compare_html(report: CompareReport) -> str:
    from harness.report.diff_flames import diff_flames

    ref = report.reference
    flames = [f for c in report.comparisons for f in diff_flames(
        Path(ref.path), Path(c.other.path), ref.label, c.other.label)]
    return _env().get_template("compare.html.j2").render(
        r=report, flames=flames,
        grid=_grid(report) if len(report.comparisons) > 1 else [],
        generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )


def write_compare(report: CompareReport, files: CompareFiles) -> str:
    """Write the HTML, Markdown and JSON files; return the Markdown."""
    from harness.gate.output import write_text

    text = compare_markdown(report)
    write_text(files.html, compare_html(report))
    write_text(files.markdown, text)
    data = clean(compare_json(report))
    write_text(files.json, json.dumps(data, indent=2, allow_nan=False) + "\n")
    return text
