"""Whole runs on the docker runtime through the CLI: the quickstart's endpoints with a kill and
a pause fault, container-metered CPU against the per-request CPU, nothing left on the engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import docker
import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.docker

SCENARIO = """
name: docker-faults
target:
  runtime: docker
  services:
    api:
      command: "{python} -m targets.sample"
      replicas: 2
      cpu: 0.5
      memory: 256Mi
traffic: {model: open, rate: 30, warmup: 2s, duration: 16s}
requests:
  - {name: cpu, path: "/cpu?ms=20"}
  - {name: cheap, path: /cheap, weight: 2}
faults:
  - {name: killed, kind: kill, target: api, replicas: 1, start: 4s, duration: 5s}
  - {name: paused, kind: pause, target: api, replicas: 1, start: 10s, duration: 3s}
"""


def test_quickstart_endpoints_with_faults_on_docker(
        images: dict[str, str], docker_client: docker.DockerClient,
        scenario_file: Callable[[str], Path], run_dir: Path) -> None:
    before = {c.id for c in docker_client.containers.list(all=True)}
    done = run_cli("run", scenario_file(SCENARIO), "--output", run_dir, timeout=400)
    assert done.returncode == 0, done.stderr
    steps = [json.loads(line) for line in (run_dir / "faults.jsonl").read_text().splitlines()]
    assert [(s["fault"], s["action"], s["status"]) for s in steps] == [
        ("killed", "inject", "ok"), ("killed", "revert", "ok"),
        ("paused", "inject", "ok"), ("paused", "revert", "ok")]
    assert steps[1]["details"]["time_to_ready_s"]

    # Container-metered CPU of the app against what its requests reported (Server-Timing):
    # the CPU-heavy endpoint dominates, so the two agree within 10 % plus the unattributed rest.
    records = pd.read_parquet(run_dir / "requests.parquet")
    usage = pd.read_parquet(run_dir / "usage.parquet")
    app = usage[usage["service"] == "api"]
    metered = sum(_gained(g.sort_values("ts")["cpu_s"]) for _, g in app.groupby("replica"))
    first, last = app["ts"].min(), app["ts"].max()
    inside = records[(records["start"] >= first) & (records["end"] <= last)]
    reported = inside["cpu_ms"].sum() / 1000.0
    assert reported <= metered * 1.10, (reported, metered)
    assert metered <= reported * 1.6, (reported, metered)  # waitress and idle overhead on top

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["cost_per_call_usd"] > 0
    assert {c.id for c in docker_client.containers.list(all=True)} == before


def test_cleanup_removes_what_a_killed_harness_left_on_the_engine(
        images: dict[str, str], docker_client: docker.DockerClient,
        scenario_file: Callable[[str], Path], run_dir: Path) -> None:
    import subprocess
    import time

    from tests.conftest import HARNESS, ROOT

    text = SCENARIO.split("faults:")[0].replace("duration: 16s", "duration: 120s")
    before = {c.id for c in docker_client.containers.list(all=True)}
    proc = subprocess.Popen([HARNESS, "run", str(scenario_file(text)), "--output", str(run_dir)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = run_dir / "requests.parquet.parts"
    deadline = time.time() + 180
    while time.time() < deadline and not (parts.is_dir() and any(parts.iterdir())):
        time.sleep(0.5)
    proc.kill()  # SIGKILL: compose down never runs
    proc.wait(timeout=10)
    assert {c.id for c in docker_client.containers.list(all=True)} != before
    done = run_cli("cleanup", run_dir)
    assert done.returncode == 0, done.stderr
    assert "docker project harness-" in done.stdout
    assert {c.id for c in docker_client.containers.list(all=True)} == before
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "aborted"


def _gained(cpu: pd.Series) -> float:
    """CPU-seconds a cumulative counter gained; the killed replica restarts with its counter
    reset, and after a reset the new value is the gain (as the cost engine meters it)."""
    values = cpu.to_numpy(float)
    steps = np.diff(values)
    return float(np.where(steps >= 0, steps, values[1:]).sum())
