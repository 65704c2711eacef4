"""Load from several Locust worker processes: every request the target served is recorded
exactly once, the open-model rate holds, a remote worker ships its records to the master, and
a worker killed mid-run is recorded while the run completes with the others."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.conftest import HARNESS, ROOT, leftover_processes, run_cli

pytestmark = pytest.mark.slow

SCENARIO = """
name: workers
target:
  services:
    api:
      command: "{python} -m targets.sample"
      env: {SAMPLE_STATS_FILE: "{run_dir}/served-{replica}.json"}
traffic:
  model: open
  rate: 80
  max_in_flight: 64
  workers: 2
  warmup: 1s
  duration: DURATION
requests:
  - {name: cheap, path: /cheap}
  - {name: cpu, path: "/cpu?ms=2"}
"""


def _served(run_dir: Path) -> int:
    return int(json.loads((run_dir / "served-api-0.json").read_text())["served"])


def test_two_local_workers_record_every_request_once(
        scenario_file: Callable[[str], Path], run_dir: Path) -> None:
    done = run_cli("run", scenario_file(SCENARIO.replace("DURATION", "8s")), "--output", run_dir)
    assert done.returncode == 0, done.stderr
    records = pd.read_parquet(run_dir / "requests.parquet")
    assert len(records) == _served(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert abs(summary["achieved_rps"] - 80) / 80 < 0.05, summary["achieved_rps"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["traffic"]["workers"] == 2 and manifest["traffic"]["workers_lost"] == []
    assert not leftover_processes(run_dir)


def test_a_remote_worker_ships_its_records_to_the_master(
        scenario_file: Callable[[str], Path], run_dir: Path) -> None:
    from harness.util import free_port

    port = free_port()
    text = SCENARIO.replace("DURATION", "6s").replace("workers: 2", "workers: 1")
    scenario = scenario_file(text)
    master = subprocess.Popen([HARNESS, "run", str(scenario), "--output", str(run_dir),
                               "--master-bind", f"127.0.0.1:{port}", "--remote-workers", "1"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker = subprocess.run([HARNESS, "worker", "--master", f"127.0.0.1:{port}", str(scenario)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    out, err = master.communicate(timeout=120)
    assert master.returncode == 0, err
    assert worker.returncode == 0, worker.stderr
    assert "shipped" in worker.stdout
    assert len(pd.read_parquet(run_dir / "requests.parquet")) == _served(run_dir)


def test_a_worker_killed_mid_run_is_recorded_and_the_run_completes(
        scenario_file: Callable[[str], Path], run_dir: Path) -> None:
    text = SCENARIO.replace("DURATION", "12s")
    proc = subprocess.Popen([HARNESS, "run", str(scenario_file(text)), "--output", str(run_dir)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers: list[psutil.Process] = []
    parts = run_dir / "requests.parquet.parts"
    deadline = time.time() + 90
    while time.time() < deadline and not (parts.is_dir() and any(parts.glob("w1-part-*"))):
        time.sleep(0.2)  # both workers connected and recording
    time.sleep(1)
    marker = str(run_dir.resolve())
    for candidate in psutil.process_iter(["cmdline"]):
        try:
            if candidate.environ().get("HARNESS_RUN_DIR") == marker and "worker" in (
                    candidate.info["cmdline"] or []):
                workers.append(candidate)
        except psutil.Error:
            continue
    assert len(workers) == 2
    workers[0].send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert len(manifest["traffic"]["workers_lost"]) == 1
    assert not leftover_processes(run_dir)
