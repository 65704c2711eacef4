"""Render ``report.html`` from a run's summary, timeline and manifest (rendering only).

The report is one self-contained file: CSS, the small script and every chart are inline, and
its Content-Security-Policy lets nothing load and no script run but the report's own (allowed
by its SHA-256 hash), so even a name that slipped through escaping could not execute. Three
views: executive (``executive.py``), on-call (``oncall.py``) and debug (``debug.py``,
``profiles.py``). The ledger is optional: without it the per-endpoint category split, memory
per call and costliest request groups are left out.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import time
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from harness.artifacts import FAULTS, REPORT, Manifest
from harness.artifacts.rundata import read_faults
from harness.cost.ledger import Ledger
from harness.report.debug import debug_context
from harness.report.executive import executive_context
from harness.report.format import money, num, pct, seconds, usd
from harness.report.oncall import FACTOR, SUSTAIN_S, oncall_context
from harness.report.profiles import profiles_context
from harness.util import atomic_write_text

__all__ = ["num", "render_html", "render_report", "script_hash", "usd"]

COUNTERS = (("db_reads_per_call", "DB reads"), ("db_writes_per_call", "DB writes"),
            ("cache_hits_per_call", "cache hits"), ("cache_misses_per_call", "cache misses"),
            ("external_calls_per_call", "external calls"), ("retries_per_call", "retries"),
            ("log_bytes_per_call", "log bytes"))  # fmt: skip


def _static(name: str) -> str:
    return (resources.files("harness.report") / "static" / name).read_text(encoding="utf-8")


def script_hash(script: str) -> str:
    """The CSP source that allows exactly ``script`` as an inline script."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("harness", "report/templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)  # fmt: skip
    env.globals.update(usd=usd, money=money, num=num, pct=pct, seconds=seconds)
    return env


def _counters(summary: dict[str, Any]) -> list[tuple[str, str]]:
    endpoints = summary.get("endpoints") or []
    return [(key, label) for key, label in COUNTERS
            if any(e.get(key) is not None for e in endpoints)]  # fmt: skip


def _cpu_per_call(summary: dict[str, Any]) -> dict[str, float | None]:
    return {str(e["name"]): e.get("cpu_ms_per_call") for e in summary.get("endpoints") or []}


def _vcpu_second(ledger: Ledger | None) -> float | None:
    """The book's price of one vCPU-second, to price each function's CPU per call."""
    if ledger is None:
        return None
    price = ledger.book.first(("vcpu_hour", "vcpu_second"))
    return price.per_base_unit if price else None


def render_html(run_dir: Path, summary: dict[str, Any], timeline: pd.DataFrame,
                manifest: Manifest, book_date: str | None = None,
                ledger: Ledger | None = None) -> str:  # fmt: skip
    """The report as a string (see the module docstring)."""
    script = _static("report.js")
    oncall = oncall_context(timeline, manifest, read_faults(Path(run_dir) / FAULTS))
    return _env().get_template("report.html.j2").render(
        s=summary, x=executive_context(summary, ledger), o=oncall,
        d=debug_context(summary, ledger),
        **profiles_context(Path(run_dir), _cpu_per_call(summary), _vcpu_second(ledger)),
        counters=_counters(summary), timeline_data=oncall["data"],
        factor=f"{FACTOR:g}", sustain=SUSTAIN_S,
        css=Markup(_static("report.css")), script=Markup(script),
        script_hash=script_hash(script),
        description=manifest.scenario.get("description"), error=manifest.error,
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(manifest.started_at)),
        generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        version=_version(), book_date=book_date,
    )  # fmt: skip


def render_report(run_dir: Path, summary: dict[str, Any], timeline: pd.DataFrame,
                  manifest: Manifest, book_date: str | None = None,
                  ledger: Ledger | None = None) -> Path:  # fmt: skip
    """Write ``RUN_DIR/report.html`` atomically and return its path."""
    path = Path(run_dir) / REPORT
    atomic_write_text(path, render_html(run_dir, summary, timeline, manifest, book_date, ledger))
    return path


def _version() -> str:
    try:
        return importlib.metadata.version("cost-harness")
    except importlib.metadata.PackageNotFoundError:
        return "dev"
