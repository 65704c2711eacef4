"""A calibrated run priced within ±5 % of the cost computed by hand: the sample target's /cpu
burns exactly 20 ms of thread CPU per call and /big returns exactly 256 KiB."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli

SCENARIO = """
name: calibrated
target:
  services:
    api:
      command: "{python} -m targets.sample"
      cpu: 1
      memory: 256Mi
traffic: {model: open, rate: 30, warmup: 1s, duration: 8s}
requests:
  - {name: cpu, path: "/cpu?ms=20"}
  - {name: big, path: "/big?kb=256"}
pricing: {price_book: opencost-default}
"""
VCPU_HOUR = 0.031611  # opencost-default
EGRESS_GB = 0.12


def test_calibrated_costs_match_the_hand_computation(
        scenario_file: Callable[[str], Path], run_dir: Path) -> None:
    done = run_cli("run", scenario_file(SCENARIO), "--output", run_dir)
    assert done.returncode == 0, done.stderr
    ledger = pd.read_parquet(run_dir / "ledger.parquet")
    calls = pd.read_parquet(run_dir / "requests.parquet").query("phase == 'baseline'")
    n = calls["endpoint"].value_counts()

    def direct(endpoint: str, key: str) -> float:
        rows = ledger[(ledger["x_Endpoint"] == endpoint) & (ledger["x_PriceKey"] == key)]
        return float(rows["EffectiveCost"].sum()) / int(n[endpoint])

    by_hand_cpu = 0.020 * VCPU_HOUR / 3600  # 20 ms of one vCPU
    by_hand_egress = 256 * 1024 * EGRESS_GB / 1e9  # 262,144 bytes at $0.12 per GB
    assert direct("cpu", "vcpu_hour") == pytest.approx(by_hand_cpu, rel=0.05)
    assert direct("big", "egress_gb") == pytest.approx(by_hand_egress, rel=0.01)
    total = float(ledger["EffectiveCost"].sum())
    assert total == pytest.approx(float(ledger["x_FullCost"].sum()), rel=0.01)
