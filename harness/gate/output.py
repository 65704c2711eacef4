"""What the gate and compare print and write: number formats, Markdown (PR-comment style),
JUnit XML (one testcase per check) and JSON; ``publish`` also appends the Markdown to
``$GITHUB_STEP_SUMMARY`` when it is set.

Every user-supplied string (endpoint, run and scenario names) is escaped for Markdown and HTML
(GitHub renders inline HTML in comments) and stripped of characters XML 1.0 cannot carry.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.compare import SideInfo, estimate_json
from harness.compare.stats import Interval, Scope
from harness.errors import ArtifactError
from harness.gate.gate import SEVERITY, Check, GateResult, Margin, margin
from harness.scenario.budgets import family
from harness.util import atomic_write_text

EMOJI = {"pass": "✅", "warn": "⚠️", "inconclusive": "❔", "fail": "❌", "error": "⛔",
         "worse": "🔺", "better": "🟢", "same": "▫️", "n/a": "·"}  # fmt: skip
LABELS = {"cost_per_call": "Cost per call", "direct_cost_per_call": "Direct cost per call",
          "p50_ms": "p50 latency", "p95_ms": "p95 latency", "p99_ms": "p99 latency",
          "error_rate": "Error rate", "throughput": "Throughput"}  # fmt: skip
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def md(text: object) -> str:
    """A user string made inert in Markdown and in the HTML GitHub allows inside it."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


def xml_text(text: object) -> str:
    return _XML_BAD.sub("\ufffd", str(text))


def usd(x: float) -> str:
    """A per-call price with enough digits to tell tiny numbers apart."""
    return "$0" if x == 0 else f"${x:.3g}" if abs(x) < 0.01 else f"${x:,.4f}"


def value(metric: str, x: float | None) -> str:
    """A metric value with its unit."""
    if x is None or not math.isfinite(x):
        return "–" if x is None or math.isnan(x) else "∞"
    fam = family(metric)
    if fam == "cost":
        return usd(x)
    if fam == "latency":
        return f"{x:,.0f} ms" if abs(x) >= 100 else f"{x:.3g} ms"
    if fam == "error_rate":
        return f"{x * 100:.2f} %"
    return f"{x:.3g} req/s"


def signed(metric: str, x: float | None) -> str:
    """An absolute change with its sign and unit."""
    if x is None or (math.isfinite(x) and x == 0):
        return "–" if x is None else "±0"
    text = value(metric, abs(x)) if math.isfinite(x) else "∞"
    return ("+" if x > 0 else "−") + text


def rel(x: float | None) -> str:
    """A relative change: +12 %, +3.4 %, −0.2 %."""
    if x is None or math.isnan(x):
        return "–"
    if math.isinf(x):
        return "+∞ %" if x > 0 else "−∞ %"
    digits = 0 if abs(x) >= 0.095 else 1
    number = f"{abs(x) * 100:.{digits}f}"
    return ("±" if float(number) == 0 else "+" if x > 0 else "−") + number + " %"


def ci_text(ci: Interval | None, fmt: Callable[[float | None], str]) -> str:
    """``+8…+16 %`` (the unit once, at the end, when both ends carry the same one)."""
    if ci is None:
        return "no CI"
    lo, hi = fmt(ci[0]), fmt(ci[1])
    for unit in (" %", " ms", " req/s"):
        if lo.endswith(unit) and hi.endswith(unit):
            return f"{lo.removesuffix(unit)}…{hi}"
    return f"{lo}…{hi}"


def scope_text(scope: Scope, escape: Callable[[object], str] = md) -> str:
    """``GET /cpu``, ``all endpoints`` or ``category egress`` (escaped for Markdown)."""
    if scope.kind == "endpoint":
        return escape(scope.name)
    return f"category {escape(scope.name)}" if scope.kind == "category" else "all endpoints"


def _levels_margin(check: Check) -> Margin | None:
    level = check.budget.level("fail") or check.budget.level("warn")
    return margin(level, check.estimate) if level is not None and check.estimate else None


def statistic(check: Check, confidence: float) -> str:
    """The number the levels apply to, with its interval: ``+12 % (95 % CI +8…+16 %)``."""
    est, found = check.estimate, _levels_margin(check)
    if est is None or found is None:
        return "–"
    metric = est.metric

    def absolute(x: float | None) -> str:
        return signed(metric, x)

    def plain(x: float | None) -> str:
        return value(metric, x)

    formats = {"relative": (est.rel, est.rel_ci, rel), "delta": (est.delta, est.delta_ci, absolute),
               "limit": (est.new, est.new_ci, plain)}  # fmt: skip
    point, ci, fmt = formats[found.level.kind]
    return f"{fmt(point)} ({confidence * 100:g} % CI {ci_text(ci, fmt)})"


def headline(check: Check, confidence: float, escape: Callable[[object], str] = md) -> str:
    """``Cost per call +12 % (95 % CI +8…+16 %) on POST /checkout ❌``."""
    number = statistic(check, confidence)
    number = "" if number == "–" else f" {number}"
    scope = scope_text(check.scope, escape)
    return f"{LABELS[check.budget.metric]}{number} on {scope} {EMOJI[check.verdict]}"


def _side(info: SideInfo | None) -> str:
    if info is None:
        return "none (limits only)"
    runs = ", ".join(md(r) for r in info.run_ids)
    return (f"{md(info.label)} (run {runs}; {info.requests:,} calls over "
            f"{info.seconds:.0f} s, {info.windows} windows)")  # fmt: skip


TITLES = {"pass": "passed", "warn": "passed with warnings", "fail": "failed",
          "error": "could not check every budget"}  # fmt: skip


def gate_markdown(result: GateResult) -> str:
    """The PR-comment summary: headline, the notable checks, a table of all, the method."""
    counts = ", ".join(f"{result.count(v)} {v}" for v in SEVERITY if result.count(v))
    counts = counts or "no budget applied to these runs"
    lines = [f"### {EMOJI[result.verdict]} Cost gate {TITLES[result.verdict]} ({counts})", ""]
    notable = sorted((c for c in result.checks if c.verdict != "pass"),
                     key=lambda c: -SEVERITY[c.verdict])  # fmt: skip
    for item in notable:
        text = headline(item, result.confidence)
        text = f"**{text}**" if item.verdict == "fail" else text
        lines.append(f"- {text} — {md(item.reason)}")
    lines += ["" if notable else "All budgets hold.", "",
              "| | check | baseline | candidate | tested (CI) | levels | verdict |",
              "|:-:|---|--:|--:|--:|---|---|"]  # fmt: skip
    for item in result.checks:
        est = item.estimate
        base = value(item.budget.metric, est.base) if est else "–"
        new = value(item.budget.metric, est.new) if est else "–"
        lines.append(
            f"| {EMOJI[item.verdict]} | {LABELS[item.budget.metric]} · {scope_text(item.scope)} | "
            f"{base} | {new} | {statistic(item, result.confidence)} | "
            f"{md(item.budget.levels_text())} | {item.verdict} |"
        )
    lines += ["", f"Baseline: {_side(result.baseline)}  ",
              f"Candidate: {_side(result.candidate)}  ",
              f"Priced with {md(result.pricing.price_book)} / "
              f"{md(result.pricing.billing_model or 'per-service')} billing "
              f"({md(result.pricing.currency)}).", ""]  # fmt: skip
    lines += [f"> {md(note)}" for note in result.notes]
    lines.append(METHOD.format(share=f"{result.confidence * 100:g} %"))
    return "\n".join(lines) + "\n"


METHOD = (
    "\n<details><summary>How verdicts are decided</summary>\n\n"
    "Intervals are {share} bootstrap CIs over the time windows of both sides, resampled "
    "independently (runs first, then windows, when a side pools repeated runs); overall figures "
    "use the baseline's traffic mix. ❌ fail: the whole CI is beyond the fail level. "
    "❔ inconclusive: the CI contains the fail level, so this run cannot tell (passes unless "
    "`inconclusive: fail`). ⚠️ warn: the estimate is beyond the warn level. "
    "⛔ error: the budget could not be checked.\n\n</details>\n"
)


def _testcase(parent: ET.Element, check: Check, result: GateResult) -> None:
    case = ET.SubElement(parent, "testcase", name=xml_text(check.label),
                         classname=f"cost-gate.{check.budget.metric}", time="0")  # fmt: skip
    summary = xml_text(f"{headline(check, result.confidence, str)}: {check.reason}")
    strict = result.inconclusive_fails and check.verdict == "inconclusive"
    if check.verdict == "fail" or strict:
        node = ET.SubElement(case, "failure", message=summary, type=f"budget-{check.verdict}")
        node.text = summary
    elif check.verdict == "error":
        ET.SubElement(case, "error", message=summary, type="budget-unchecked").text = summary
    elif check.verdict == "inconclusive":
        ET.SubElement(case, "skipped", message=summary)
    levels = xml_text(check.budget.levels_text())
    ET.SubElement(case, "system-out").text = f"{check.verdict.upper()}: {summary}\nlevels: {levels}"


def gate_junit(result: GateResult) -> str:
    """JUnit XML: one testsuite, one testcase per check (fail → failure, error → error,
    inconclusive → skipped, or failure under ``inconclusive: fail``)."""
    failures = sum(1 for c in result.checks if c.verdict == "fail"
                   or (result.inconclusive_fails and c.verdict == "inconclusive"))  # fmt: skip
    skipped = 0 if result.inconclusive_fails else result.count("inconclusive")
    counts = {"tests": str(len(result.checks)), "failures": str(failures),
              "errors": str(result.count("error")), "skipped": str(skipped),
              "time": "0"}  # fmt: skip
    root = ET.Element("testsuites", {"name": "cost-harness gate", **counts})
    suite = ET.SubElement(root, "testsuite", {
        "name": xml_text(f"cost gate: {result.candidate.scenario}"),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), **counts})  # fmt: skip
    props = ET.SubElement(suite, "properties")
    for key, text in (("baseline", result.baseline.path if result.baseline else ""),
                      ("candidate", result.candidate.path),
                      ("price_book", result.pricing.price_book),
                      ("confidence", f"{result.confidence:g}")):  # fmt: skip
        ET.SubElement(props, "property", name=key, value=xml_text(text))
    for check in result.checks:
        _testcase(suite, check, result)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def clean(data: Any) -> Any:
    """JSON-safe: tuples as lists, NaN and infinities as null."""
    if isinstance(data, dict):
        return {str(k): clean(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [clean(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def gate_json(result: GateResult) -> Any:
    """``gate.json``: the verdict, counts, both sides and every check with its numbers."""
    checks = [
        {"label": c.label, "verdict": c.verdict, "reason": c.reason,
         "budget": c.budget.model_dump(mode="json"),
         **(estimate_json(c.estimate) if c.estimate else {"metric": c.budget.metric})}
        for c in result.checks
    ]  # fmt: skip
    return clean({
        "format": "cost-harness-gate/1",
        "verdict": result.verdict,
        "exit_code": result.exit_code,
        "counts": {v: result.count(v) for v in SEVERITY},
        "confidence": result.confidence,
        "inconclusive_fails": result.inconclusive_fails,
        "price_book": result.pricing.price_book,
        "billing_model": result.pricing.billing_model,
        "currency": result.pricing.currency,
        "baseline": result.baseline.__dict__ if result.baseline else None,
        "candidate": result.candidate.__dict__,
        "notes": list(result.notes),
        "checks": checks,
    })  # fmt: skip


@dataclass(frozen=True)
class GateOutputs:
    """Where to write the gate's outputs (None: not written)."""

    junit: Path | None = None
    markdown: Path | None = None
    json: Path | None = None


def write_text(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot be written ({exc.strerror or exc})") from exc


def step_summary(text: str) -> Path | None:
    """Append ``text`` to ``$GITHUB_STEP_SUMMARY`` when it is set; return that path."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    try:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except OSError as exc:
        raise ArtifactError(f"{target}: cannot append the summary ({exc.strerror})") from exc
    return Path(target)


def publish(result: GateResult, outputs: GateOutputs) -> str:
    """Write the requested outputs, append to the GitHub step summary; return the Markdown."""
    text = gate_markdown(result)
    if outputs.markdown:
        write_text(outputs.markdown, text)
    if outputs.junit:
        write_text(outputs.junit, gate_junit(result))
    if outputs.json:
        write_text(outputs.json, json.dumps(gate_json(result), indent=2, allow_nan=False) + "\n")
    step_summary(text)
    return text
