"""Check a proposed recording-path patch: same Parquet output, and its µs per request against
the current code, interleaved in one process.

    .venv/bin/python bench/patch_check.py bench/patches/recorder-batch-columns.diff [--quick]

The patch is applied to a temporary copy of ``harness/`` (``patch -p1``); the copy's
``telemetry.py`` and ``traffic/recorder.py`` are loaded beside the current ones under other
module names, and both recorders get the same real request events (``recording.real_events``),
flushed every 2,000 records: rounds alternate current and patched. Then both write the same
rows and the tables must be equal.
"""

from __future__ import annotations

import argparse
import tempfile
import types
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from benchlib import load_module, median, patched_tree, spread, stop_on_sigterm
from recording import real_events, time_listener

from harness.traffic import recorder as current


def patched_recorder(patch: Path, tmp: Path) -> types.ModuleType:
    """The recorder module of ``harness/`` with ``patch`` applied (telemetry included)."""
    copy = patched_tree(patch, tmp)
    load_module("patched_telemetry", copy / "harness" / "telemetry.py")
    return load_module("patched_recorder", copy / "harness" / "traffic" / "recorder.py",
                       ("from harness.artifacts.telemetry import", "from patched_telemetry import"))


def same_output(events: list[dict[str, Any]], patched: types.ModuleType, tmp: Path) -> bool:
    tables = []
    for name, module in (("current", current), ("patched", patched)):
        path = tmp / f"{name}.parquet"
        rec = module.Recorder(path, module.PhaseClock(), "v")
        for index in range(5000):
            rec.on_request(**events[index % len(events)])
        rec.close()
        tables.append(pq.read_table(path))
    return bool(tables[0].equals(tables[1]))


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("patch", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    records, rounds = (20_000, 3) if args.quick else (100_000, 9)
    events = real_events()
    with tempfile.TemporaryDirectory(prefix="bench-patch-") as name:
        tmp = Path(name)
        patched = patched_recorder(args.patch, tmp)
        print(f"same requests.parquet content: {same_output(events, patched, tmp)}")
        times: dict[str, list[float]] = {"current": [], "patched": []}
        for r in range(rounds):
            for label, module in (("current", current), ("patched", patched)):
                rec = module.Recorder(tmp / f"{label}-{r}.parquet", module.PhaseClock(), "v")
                times[label].append(time_listener(events, records, 2_000, rec) / records * 1e6)
    ratios = [p / c for p, c in zip(times["patched"], times["current"], strict=True)]
    for label, values in times.items():
        print(f"{label:>8}: on_request + flush {median(values):6.2f} µs per request "
              f"(range {spread(values)})")
    print(f"patched / current: {median(ratios):.3f} (range {spread(ratios)}, {rounds} rounds)")


if __name__ == "__main__":
    main()
