"""How big report.html gets, and how long analysis + rendering take, at 10 k and 1 M requests.

    .venv/bin/python bench/report_size.py [--sizes 10000 1000000] [--keep DIR]

Each size is a synthetic run from ``ledger_scale.generate`` (610 s: 10 s warm-up, 600 s priced,
12 endpoints, 3 tenants, two app replicas, a cache and a database, full telemetry) plus two
fault windows in ``faults.jsonl``. A fresh subprocess per size loads, prices, summarises, builds
the timeline and renders the report with the ledger (as ``harness report`` does), timing each
stage. Sizes run side by side in one invocation, so their ratio is what to read.
Goal: report.html <= 5 MB at 1 M requests (aggregates only: its size must not follow the rows).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ledger_scale import generate

from harness.artifacts import FAULTS

T0 = 1_700_000_000.0  # ledger_scale's run start
FAULT_WINDOWS = (("db-slow", 200.0, 260.0), ("cache-flush", 400.0, 430.0))
GOAL_BYTES = 5 * 2**20


def _faults(run_dir: Path) -> None:
    records = [
        {"fault": name, "kind": "downstream", "target": "db", "action": action, "status": "ok",
         "start": T0 + at, "end": T0 + at + 0.01, "error": None}
        for name, start, end in FAULT_WINDOWS
        for action, at in (("inject", start), ("revert", end))
    ]  # fmt: skip
    (run_dir / FAULTS).write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")


def measure(run_dir: Path) -> dict[str, float]:
    """Analysis stage by stage, then the render; wall seconds and the report's size."""
    from harness.artifacts.rundata import load_run
    from harness.cost import load_price_book, scenario_overrides
    from harness.cost.ledger import build_ledger
    from harness.report.render import render_report
    from harness.report.summary import build_summary
    from harness.report.timeline import build_timeline

    times: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        times[name] = now - mark
        mark = now

    run = load_run(run_dir)
    book = load_price_book(run.manifest.price_book, scenario_overrides(run))
    ledger = build_ledger(run, book)
    summary = build_summary(run, ledger)
    timeline = build_timeline(run, ledger)
    lap("analysis_s")
    path = render_report(run_dir, summary, timeline, run.manifest,
                         book_date=str(book.effective_date), ledger=ledger)  # fmt: skip
    lap("render_s")
    times["bytes"] = float(path.stat().st_size)
    times["requests"] = float(summary["requests"])
    times["seconds"] = float(len(timeline))
    return times


def _child(*args: str) -> str:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{done.stderr}")
    return done.stdout


def _table(results: list[tuple[int, dict[str, float]]]) -> None:
    first = results[0][1]
    header = ("records", "timeline s", "analysis s", "render s", "render x first",
              "report KiB", "size x first", "<= 5 MB")  # fmt: skip
    print(" ".join(f"{h:>14}" for h in header))
    for n, r in results:
        cells = [f"{n:,}", f"{r['seconds']:.0f}", f"{r['analysis_s']:.2f}", f"{r['render_s']:.2f}",
                 f"{r['render_s'] / first['render_s']:.2f}", f"{r['bytes'] / 1024:.0f}",
                 f"{r['bytes'] / first['bytes']:.2f}",
                 "yes" if r["bytes"] <= GOAL_BYTES else "NO"]  # fmt: skip
        print(" ".join(f"{c:>14}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--keep", type=Path, help="write run directories here and keep them")
    parser.add_argument("--generate", nargs=2, metavar=("DIR", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(Path(args.generate[0]), int(args.generate[1]))
        _faults(Path(args.generate[0]))
        return
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        results = []
        for n in args.sizes:
            run_dir = base / f"report-{n}"
            _child("--generate", str(run_dir), str(n))
            results.append((n, json.loads(_child("--measure", str(run_dir)))))
    _table(results)


if __name__ == "__main__":
    main()
