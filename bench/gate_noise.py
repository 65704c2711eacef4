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

from harness.compare.baselines import load_sources  # noqa: E402
from harness.compare.stats import Contrast, Side, pool  # noqa: E402
from harness.gate import evaluate  # noqa: E402
from harness.scenario.budgets import parse_cli_budget  # noqa: E402

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
    "direct cost +5%": ["direct_cost_per_call:+5%", "direct_cost_per_call[*]:+5%"],
    "direct cost +0%": ["direct_cost_per_call:+0%", "direct_cost_per_call[*]:+0%"],
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


class Evaluator:
    """Gates runs under every budget set, pricing each run once (usage billing)."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        names = list(dirs)
        sources = load_sources([dirs[n] for n in names], billing_model="usage")
        self.runs = {n: s.runs[0] for n, s in zip(names, sources, strict=True)}
        self.sets = {name: [parse_cli_budget(text) for text in texts]
                     for name, texts in BUDGET_SETS.items()}  # fmt: skip

    def gate(self, candidates: Sequence[str], baselines: Sequence[str]) -> dict[str, Any]:
        """Per budget set: the verdict, failing and inconclusive checks, the GET /cpu change."""
        base = Side(pool([self.runs[n] for n in baselines]), seed=0)
        new = Side(pool([self.runs[n] for n in candidates]), seed=1)
        contrast = Contrast(base, new, 0.95)
        out: dict[str, Any] = {}
        for name, budgets in self.sets.items():
            checks = evaluate(budgets, contrast)
            failed = [c.label for c in checks if c.verdict == "fail"]
            unsure = [c.label for c in checks if c.verdict == "inconclusive"]
            cpu = next((c.estimate for c in checks if c.label.endswith("[GET /cpu]")), None)
            out[name] = {
                "verdict": "fail" if failed else "inconclusive" if unsure else "pass",
                "failed": failed,
                "inconclusive": unsure,
                "cpu_change": cpu.rel if cpu else None,
            }
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


def table(aa: list[dict[str, Any]], regressed: dict[str, list[dict[str, Any]]]) -> str:
    """One row per budget set: A/A false alarms and how often each factor was caught."""
    factors = list(regressed)
    lines = ["| budget set | A/A false alarms | A/A inconclusive | "
             + " | ".join(f"caught at x{f}" for f in factors) + " | smallest caught every time |",
             "|---|--:|--:|" + "--:|" * len(factors) + "---|"]  # fmt: skip
    for name in BUDGET_SETS:
        alarms = sum(g[name]["verdict"] == "fail" for g in aa)
        unsure = sum(g[name]["verdict"] == "inconclusive" for g in aa)
        cells, smallest = [], "none"
        for factor in factors:
            caught = sum(g[name]["verdict"] == "fail" for g in regressed[factor])
            cells.append(f"{caught}/{len(regressed[factor])}")
            if caught == len(regressed[factor]) and smallest == "none":
                smallest = f"x{factor}"
        lines.append(f"| {name} | {alarms}/{len(aa)} | {unsure}/{len(aa)} | "
                     + " | ".join(cells) + f" | {smallest} |")  # fmt: skip
    return "\n".join(lines)


def evaluate_all(dirs: dict[str, Path], aa: int, repeats: int,
                 factors: Sequence[float]) -> dict[str, Any]:  # fmt: skip
    """Single-run gates (A/A: consecutive same-code runs; regressions: against the same-code run
    made just before) and pooled gates of two runs per side (``--repeat 2``)."""
    ev = Evaluator(dirs)
    a = [f"a{k:02d}" for k in range(aa + 1)]
    runs = {f"{f:g}": [f"f{f:g}-{k:02d}" for k in range(repeats)] for f in factors}
    return {
        "single": {
            "aa": [ev.gate([a[k + 1]], [a[k]]) for k in range(aa)],
            "regressed": {f: [ev.gate([r[k]], [a[k]]) for k in range(repeats)]
                          for f, r in runs.items()},
        },
        "pooled": {
            "aa": [ev.gate(a[k + 2 : k + 4], a[k : k + 2]) for k in range(aa - 2)],
            "regressed": {f: [ev.gate(r[k : k + 2], a[k : k + 2]) for k in range(repeats - 1)]
                          for f, r in runs.items()},
        },
    }  # fmt: skip


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
    results = evaluate_all(dirs, args.aa, args.repeats, args.factors)
    results["settings"] = {"duration_s": args.duration, "aa": args.aa, "repeats": args.repeats,
                           "factors": args.factors, "budget_sets": BUDGET_SETS}  # fmt: skip
    (runs_dir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print("One run per side:\n")
    print(table(results["single"]["aa"], results["single"]["regressed"]))
    print("\nTwo runs per side, pooled (--repeat 2; runs drawn first, then windows):\n")
    print(table(results["pooled"]["aa"], results["pooled"]["regressed"]))
    print(f"\n(runs of {args.duration:g} s measured at 40 req/s; usage billing; "
          f"details in {runs_dir / 'results.json'})")


if __name__ == "__main__":
    main()
