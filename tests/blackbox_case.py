"""The black-box attribution check shared by the local and the docker test: an uninstrumented
target (``targets.blackbox``) whose calls burn known CPU, priced by regression over the
designed mix, compared with the CPU the target itself counted per path (its ``TRUTH_FILE``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.artifacts import PhaseWindow
from harness.artifacts.rundata import load_run
from harness.cost.blackbox import fit_run, unmeasured
from harness.cost.inputs import prepare_inputs
from harness.cost.services import replica_services

BURN_MS = {"GET /zero": 0.0, "GET /cpu2": 2.0, "GET /cpu5": 5.0, "GET /cpu10": 10.0}


def scenario(runtime: str, duration_s: int, mix: str | None = None, rate: int = 40) -> str:
    """The scenario text; without ``mix`` the harness must design the mix by itself (auto)."""
    mix_line = f"\n  mix: {mix}" if mix else ""
    requests = "\n".join(f'  - {{name: "{name}", path: "/{name.split("/")[1]}?ms={ms:g}"}}'
                         for name, ms in BURN_MS.items())
    return f"""
name: blackbox-{runtime}
target:
  runtime: {runtime}
  services:
    api:
      command: "{{python}} -m targets.blackbox"
      env: {{TRUTH_FILE: "{{run_dir}}/truth.json"}}
      cpu: 1
      memory: 256Mi
traffic:
  model: open
  rate: {rate}
  max_in_flight: 32
  warmup: 2s
  duration: {duration_s}s{mix_line}
requests:
{requests}
"""


def truth_ms(run_dir: Path) -> dict[str, float]:
    """CPU ms per call per endpoint as the target counted it (parsing and writing included)."""
    document = json.loads((run_dir / "truth.json").read_text())
    by_path = document["by_path"]
    return {name: by_path[f"/{name.split('/')[1]}"]["cpu_ms"]
            / by_path[f"/{name.split('/')[1]}"]["calls"] for name in BURN_MS}


def check_against_truth(run_dir: Path) -> dict[str, Any]:
    """Every endpoint of >= 2 ms within 10 % of the truth, its interval around the estimate;
    returns the summary's endpoints by name."""
    summary = json.loads((run_dir / "summary.json").read_text())
    endpoints = {e["name"]: e for e in summary["endpoints"]}
    truth = truth_ms(run_dir)
    for name, real in truth.items():
        est = endpoints[name]
        assert est["cpu_ms_source"] == "regression", est
        low, high = est["cpu_ms_ci95"]
        assert low <= est["cpu_ms_per_call"] <= high
        if BURN_MS[name] >= 2.0:
            assert est["cpu_ms_per_call"] == pytest.approx(real, rel=0.10), (name, real, est)
    return endpoints


def widths_first_half_vs_all(run_dir: Path) -> tuple[float, float]:
    """Mean relative interval width (>= 2 ms endpoints) fitted on the first half of the
    measured windows, and on all of them: the same run, so only the length differs."""
    run = load_run(run_dir)
    inputs = prepare_inputs(run, 100.0)
    phase = run.priced_windows[0]
    assert phase.end is not None
    half = PhaseWindow(name=phase.name, start=phase.start,
                       end=phase.start + (phase.end - phase.start) / 2, priced=True)
    widths = []
    for window in (half, phase):
        fits = fit_run(run.priced_batches(), run.usage, (window,),
                       run.manifest.traffic["design"], replica_services(run.usage), inputs.entry,
                       unmeasured(inputs.requests))
        fit = fits[("api", phase.name)]
        rel = [(f.high_ms - f.low_ms) / f.cpu_ms for name, f in fit.endpoints.items()
               if BURN_MS[name] >= 2.0]
        widths.append(sum(rel) / len(rel))
    return widths[0], widths[1]
