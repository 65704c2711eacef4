"""A synthetic priced run with a fault, a cost anomaly, profiles and hostile names, rendered.

60 s: warm-up 0-5 s (not priced), baseline 5-25 s, fault ``payments-slow`` 25-45 s (every
checkout pays the external API 4 times instead of once: cost per call jumps well above 3x
the baseline for 20 s), recovery 45-60 s. Endpoint names, a tenant, the scenario name and
description, a fault name and a profiled function name carry markup that would run script if
it were not escaped; every such script sets ``document.title`` to ``PWNED`` and
``window.__pwned``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifact_factory import GIB, request, samples, service, write_run

from harness.artifacts import FAULTS
from harness.artifacts.rundata import load_run
from harness.cost import load_price_book
from harness.cost.ledger import build_ledger, write_ledger
from harness.profiling.layout import INDEX, PROFILES_DIR, ProfileEntry, ProfileIndex, slug
from harness.report.render import render_report
from harness.report.summary import build_summary, write_summary
from harness.report.timeline import build_timeline

SCRIPT = "<script>window.__pwned=1;document.title='PWNED'</script>"
IMG = "\"><img src=x onerror=\"window.__pwned=2;document.title='PWNED'\">"
SVG = "<svg onload=\"window.__pwned=3;document.title='PWNED'\"></svg>"
SAFE = "GET /products/{id}"
HOSTILE_SCRIPT = f"GET /search?q={SCRIPT}"
HOSTILE_IMG = f"POST /checkout{IMG}"
SCENARIO = f"shop{SCRIPT}"
PHASES = (("warmup", 0.0, 5.0, False), ("baseline", 5.0, 25.0, True),
          ("payments-slow", 25.0, 45.0, True), ("recovery", 45.0, 60.0, True))  # fmt: skip
RATE = 20  # requests per second, spread over the three endpoints


@dataclass(frozen=True)
class RenderedRun:
    run_dir: Path
    report: Path
    summary: dict[str, Any]


def _phase(t: float) -> str:
    return next(name for name, start, end, _ in PHASES if start <= t < end)


def _requests() -> list[dict[str, Any]]:
    rows = []
    for i in range(int(PHASES[-1][2] * RATE)):
        t = i / RATE
        phase, kind = _phase(t), i % 4
        tenant = SVG if i % 5 == 0 else "acme"
        if kind < 2:
            rows.append(request(t, SAFE, 8.0 + kind, phase, cpu_ms=2.0, db_reads=1,
                                cache_hits=1, bytes_out=900, tenant=tenant, replica="api-0"))
        elif kind == 2:
            rows.append(request(t, HOSTILE_SCRIPT, 30.0, phase, cpu_ms=9.0, bytes_out=4000,
                                tenant=tenant, replica="api-0", log_bytes=300))
        else:
            paid = 4 if phase == "payments-slow" else 1
            rows.append(request(t, HOSTILE_IMG, 60.0 * paid, phase, method="POST", cpu_ms=3.0,
                                db_writes=2, external_calls=paid, external=f"payments={paid}",
                                tenant=tenant, replica="api-0",
                                error="HTTP 503" if i % 40 == 3 else None))  # fmt: skip
    return rows


def _faults(run_dir: Path) -> None:
    name = f"payments-slow{IMG}"
    records = [
        {"fault": name, "kind": "downstream", "target": "payments", "action": action,
         "status": "ok", "start": at, "end": at + 0.01, "error": None, "details": {}}
        for action, at in (("inject", 25.0), ("revert", 45.0))
    ]  # fmt: skip
    text = "".join(json.dumps(r) + "\n" for r in records)
    (run_dir / FAULTS).write_text(text, encoding="utf-8")


def _profiles(run_dir: Path) -> None:
    directory = run_dir / PROFILES_DIR
    folded = {f"main;handle;{SCRIPT}": 400_000_000, "main;handle;render_json": 250_000_000,
              "main;gc": 50_000_000}  # fmt: skip
    rel = f"api/baseline/{slug(SAFE)}.folded"
    (directory / rel).parent.mkdir(parents=True)
    (directory / rel).write_text("".join(f"{k} {v}\n" for k, v in folded.items()), "utf-8")
    entry = ProfileEntry(service="api", phase="baseline", endpoint=SAFE, cpu_s=0.7, uploads=3,
                         folded=rel, pprof=None, first_arrival=6.0, last_arrival=24.0)
    index = ProfileIndex(uploads=3, entries=[entry])
    (directory / INDEX).write_text(index.model_dump_json(), encoding="utf-8")


def build(run_dir: Path, profiles: bool = True) -> RenderedRun:
    """Write, price and render the run; return where the report is and its summary."""
    times = [float(t) for t in range(61)]
    usage = samples("api", times, [0.4 * t for t in times], rss=GIB // 2, cpu_limit=1.0,
                    mem_limit_bytes=GIB)  # fmt: skip
    svc = service("api", entry=True, cpu=1.0, memory=GIB)
    write_run(run_dir, _requests(), usage, [svc], PHASES, scenario_name=SCENARIO,
              scenario={"description": f"hostile description {IMG}"},
              traffic={"asked_rps": RATE})  # fmt: skip
    _faults(run_dir)
    if profiles:
        _profiles(run_dir)
    run = load_run(run_dir)
    book = load_price_book("opencost-default", {"external:payments": 0.002, "cache_op": 0.0,
                                                "db_read": 0.0, "db_write": 0.0})
    ledger = build_ledger(run, book)
    summary = build_summary(run, ledger)
    write_ledger(run_dir, ledger)
    write_summary(run_dir, summary)
    report = render_report(run_dir, summary, build_timeline(run, ledger), run.manifest,
                           book_date=str(book.effective_date), ledger=ledger)  # fmt: skip
    return RenderedRun(run_dir, report, json.loads((run_dir / "summary.json").read_text()))
