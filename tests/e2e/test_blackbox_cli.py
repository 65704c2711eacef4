"""The CLI on a service that reports nothing: a mix that cannot be fitted is said to be so
(exit 0, the CPU split evenly and named), bad design settings are input errors (exit 2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from tests.blackbox_case import scenario
from tests.conftest import run_cli

Writer = Callable[..., Path]


def test_a_fixed_mix_is_not_fitted_and_says_why(scenario_file: Writer, run_dir: Path) -> None:
    text = scenario("local", 8, mix="weighted")
    done = run_cli("run", scenario_file(text), "--output", run_dir)
    assert done.returncode == 0, done.stderr
    assert "not fitted" in done.stdout and "split evenly" in done.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["blackbox"] and not summary["blackbox"][0]["usable"]
    assert all(e["cpu_ms_source"] is None for e in summary["endpoints"])
    ledger = pd.read_parquet(run_dir / "ledger.parquet")
    compute = ledger[ledger["x_CostCategory"] == "compute"]
    assert set(compute["x_AttributionBasis"]) == {"even-split"}
    assert json.loads((run_dir / "manifest.json").read_text())["traffic"]["design"]["mode"] \
        == "weighted"


def test_bad_design_settings_name_the_field_and_line(scenario_file: Writer) -> None:
    done = run_cli("validate", scenario_file(scenario("local", 8, mix="sometimes")))
    assert done.returncode == 2 and "traffic.mix" in done.stderr and "line" in done.stderr
    bad = scenario("local", 8, mix="designed").replace(
        "  mix: designed\n", "  mix: designed\n  design: {window: 0s, spread: 0.5}\n")
    done = run_cli("validate", scenario_file(bad, "b.yaml"))
    assert done.returncode == 2
    assert "traffic.design.window" in done.stderr and "traffic.design.spread" in done.stderr
    assert "Traceback" not in done.stderr
