"""How noisy is the gate? A/A false alarms and the smallest regression caught every time.

Runs the sample target (``GET /cpu`` burns ``20 ms x SAMPLE_CPU_FACTOR`` of CPU, priced under
usage billing so cost follows CPU) with real ``harness run`` subprocesses, short runs:

* ``--aa + 1`` runs of the same code; consecutive pairs are gated A/A (``--aa`` gate runs);
* ``--repeats`` runs per regressed factor (default 1.05, 1.1, 1.2, 1.3), each gated against
  the same-code run made just before it (runs are interleaved so drift hits both sides).

Every gate run is evaluated under several budget sets (cost per call overall and per endpoint
at fail +10 %, +5 % and +0 % — the last is "any significant increase" — and p95 latency
+25 % for contrast). Prints a Markdown table and writes ``results.json`` into ``--runs-dir``.

    .venv/bin/python bench/gate_noise.py                # about 10-12 minutes on 2 cores
    .venv/bin/python bench/gate_noise.py --reuse --runs-dir /tmp/gate-noise   # re-evaluate
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.gate import GateResult, gate_run  # noqa: E402
from harness.gate_budgets import Budget, GateSpec, parse_cli_budget  # noqa: E402

HARNESS = str(Path(sys.executable).with_name("harness"))
SCENARIO = """
name: gate-noise
target:
  services:
    api:
      command: "{{python}} -m targets.sample"
      cpu: 1
      memory: 256Mi
      billing: usage
      env:
        SAMPLE_CPU_FACTOR: "{factor}"
traffic:
  model: open
  rate: 40
  max_in_flight: 64
  warmup: 2s
  duration: {duration}s
requests:
  - name: GET /cpu
    path: /cpu?ms=20
    weight: 2
  - name: GET /big
    path: /big?kb=256
    weight: 1
  - name: GET /cheap
    path: /cheap
    weight: 5
"""
BUDGET_SETS: dict[str, list[str]] = {
    "cost +10%": ["cost_per_call:+10%", "cost_per_call[*]:+10%"],
    "cost +5%": ["cost_per_call:+5%", "cost_per_call[*]:+5%"],
    "cost +0% (significance only)": ["cost_per_call:+0%", "cost_per_call[*]:+0%"],
    "p95 latency +25%": ["p95_ms:+25%"],
}


def run_once(runs_dir: Path, name: str, factor: float, duration: float, reuse: bool) -> Path:
    """One real run of the sample target (skipped with --reuse when it already exists)."""
    out = runs_dir / name
    if reuse and (out / "summary.json").is_file():
        return out
    scenario = runs_dir / f"{name}.yaml"
    scenario.write_text(SCENARIO.format(factor=factor, duration=duration), encoding="utf-8")
    started = time.monotonic()
    done = subprocess.run([HARNESS, "run", str(scenario), "--output", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"run {name} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    print(f"  {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return out


def verdicts(candidate: Path, baseline: Path, sets: dict[str, list[Budget]]) -> dict[str, Any]:
    """Per budget set: the gate's verdict and the labels of failing checks."""
    out: dict[str, Any] = {}
    for name, budgets in sets.items():
        result: GateResult = gate_run(candidate, baseline, GateSpec(budgets=budgets),
                                      billing_model="usage")  # fmt: skip
        out[name] = {
            "verdict": result.verdict,
            "failed": [c.label for c in result.checks if c.verdict == "fail"],
            "inconclusive": [c.label for c in result.checks if c.verdict == "inconclusive"],
            "cpu_change": next((c.estimate.rel for c in result.checks
                                if c.label.endswith("[GET /cpu]") and c.estimate), None),
        }  # fmt: skip
    return out


def schedule(aa: int, repeats: int, factors: Sequence[float]) -> list[tuple[str, float]]:
    """Run names and factors, interleaved: A0, then per round A_k and one run per factor."""
    plan: list[tuple[str, float]] = []
    for k in range(max(aa + 1, repeats)):
        if k < aa + 1:
            plan.append((f"a{k:02d}", 1.0))
        if k < repeats:
            plan += [(f"f{factor:g}-{k:02d}", factor) for factor in factors]
    return plan


def table(results: dict[str, Any], aa: int, factors: Sequence[float], repeats: int) -> str:
    lines = ["| budget set | A/A false alarms | A/A inconclusive | "
             + " | ".join(f"caught at x{f:g}" for f in factors) + " | smallest caught every time |",
             "|---|--:|--:|" + "--:|" * len(factors) + "---|"]  # fmt: skip
    for name in BUDGET_SETS:
        pairs = [results["aa"][k][name] for k in range(aa)]
        alarms = sum(p["verdict"] == "fail" for p in pairs)
        unsure = sum(bool(p["inconclusive"]) and p["verdict"] != "fail" for p in pairs)
        cells, smallest = [], "none"
        for factor in factors:
            runs = [results["regressed"][f"{factor:g}"][k][name] for k in range(repeats)]
            caught = sum(r["verdict"] == "fail" for r in runs)
            cells.append(f"{caught}/{repeats}")
            if caught == repeats and smallest == "none":
                smallest = f"x{factor:g}"
        lines.append(f"| {name} | {alarms}/{aa} | {unsure}/{aa} | " + " | ".join(cells)
                     + f" | {smallest} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", type=Path)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--aa", type=int, default=10, help="A/A gate runs (>= 10)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per regressed factor")
    parser.add_argument("--factors", type=float, nargs="+", default=[1.05, 1.1, 1.2, 1.3])
    parser.add_argument("--reuse", action="store_true", help="keep runs that already exist")
    args = parser.parse_args(argv)
    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="gate-noise-"))
    runs_dir.mkdir(parents=True, exist_ok=True)
    print(f"runs in {runs_dir}", file=sys.stderr)
    dirs = {name: run_once(runs_dir, name, factor, args.duration, args.reuse)
            for name, factor in schedule(args.aa, args.repeats, args.factors)}  # fmt: skip
    sets = {name: [parse_cli_budget(text) for text in texts]
            for name, texts in BUDGET_SETS.items()}  # fmt: skip
    results: dict[str, Any] = {
        "aa": [verdicts(dirs[f"a{k + 1:02d}"], dirs[f"a{k:02d}"], sets) for k in range(args.aa)],
        "regressed": {
            f"{factor:g}": [verdicts(dirs[f"f{factor:g}-{k:02d}"], dirs[f"a{k:02d}"], sets)
                            for k in range(args.repeats)]
            for factor in args.factors
        },  # fmt: skip
        "settings": {"duration_s": args.duration, "aa": args.aa, "repeats": args.repeats,
                     "factors": args.factors, "budget_sets": BUDGET_SETS},  # fmt: skip
    }
    (runs_dir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(table(results, args.aa, args.factors, args.repeats))
    print(f"\n(runs of {args.duration:g} s measured at 40 req/s; usage billing; "
          f"details in {runs_dir / 'results.json'})")


if __name__ == "__main__":
    main()
