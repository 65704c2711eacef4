"""A short real run against the sample target, through the CLI: measured CPU per call follows
the designed ratio, every request the target served is recorded once, the open model holds."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from tests.conftest import leftover_processes, run_cli

SCENARIO = """
name: designed-ratio
target:
  services:
    api:
      command: "{python} -m targets.sample"
      env: {SAMPLE_STATS_FILE: "{run_dir}/served-{replica}.json"}
traffic:
  model: open
  rate: 40
  max_in_flight: 32
  warmup: 1s
  duration: 8s
requests:
  - {name: heavy, path: "/cpu?ms=20", weight: 1}
  - {name: light, path: "/cpu?ms=5", weight: 1}
  - {name: cheap, path: /cheap, weight: 2}
"""


def test_designed_cpu_ratio_and_exact_records(scenario_file: Callable[[str], Path],
                                              run_dir: Path) -> None:
    done = run_cli("run", scenario_file(SCENARIO), "--output", run_dir)
    assert done.returncode == 0, done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    per = {e["name"]: e for e in summary["endpoints"]}
    ratio = per["heavy"]["cpu_ms_per_call"] / per["light"]["cpu_ms_per_call"]
    assert 3.6 <= ratio <= 4.4, ratio  # designed 20 ms vs 5 ms of thread CPU
    assert per["cheap"]["cpu_ms_per_call"] < 1.0
    assert per["heavy"]["cost_per_call_usd"] > per["light"]["cost_per_call_usd"] > 0

    records = pd.read_parquet(run_dir / "requests.parquet")
    served = json.loads((run_dir / "served-api-0.json").read_text())["served"]
    assert len(records) == served  # warm-up included: every request served is recorded once
    assert records["replica"].eq("api-0").all()
    assert records["cpu_ms"].notna().all()
    # mix: auto keeps the scenario's weights for a service that measures its own CPU
    design = json.loads((run_dir / "manifest.json").read_text())["traffic"]["design"]
    assert design["mode"] == "auto" and design["active_from"] is None
    assert {e["cpu_ms_source"] for e in summary["endpoints"]} == {"server-timing"}
    assert summary["blackbox"] == []

    asked, achieved = summary["asked_rps"], summary["achieved_rps"]
    assert abs(achieved - asked) / asked < 0.05, (asked, achieved)
    assert not leftover_processes(run_dir)


HUGE = """
name: huge-responses
target:
  services:
    api:
      command: "{python} -m targets.sample"
traffic: {model: closed, users: 3, warmup: 0s, duration: 4s}
requests:
  - {name: huge, path: "/big?kb=65536", weight: 1}
  - {name: cheap, path: /cheap, weight: 1}
"""


def test_huge_responses_are_counted_exactly(scenario_file: Callable[[str], Path],
                                            run_dir: Path) -> None:
    """64 MiB bodies: each is recorded with its exact size, the run completes and prices."""
    done = run_cli("run", scenario_file(HUGE), "--output", run_dir)
    assert done.returncode == 0, done.stderr
    records = pd.read_parquet(run_dir / "requests.parquet")
    huge = records[records["endpoint"] == "huge"]
    assert len(huge) >= 3 and huge["error"].isna().all()
    assert (huge["bytes_out"] == 64 * 2**20).all()
    summary = json.loads((run_dir / "summary.json").read_text())
    per = {e["name"]: e for e in summary["endpoints"]}
    assert per["huge"]["cost_per_call_usd"] > per["cheap"]["cost_per_call_usd"]
    assert not leftover_processes(run_dir)
