"""Whole runs on the docker runtime through the CLI: the quickstart's endpoints with a kill and
a pause fault, container-metered CPU against the per-request CPU (the killed replica metered
again after its restart), nothing left on the engine."""

from __future__ import annotations

import itertools
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

    # Container-metered CPU of the app against what its requests reported (Server-Timing), per
    # replica and per stretch of its counter (the killed replica restarts from zero): only the
    # requests it served inside that stretch, so CPU it burned after its last sample before the
    # kill is on neither side. The CPU-heavy endpoint dominates, so the two agree within 10 %.
    records = pd.read_parquet(run_dir / "requests.parquet")
    usage = pd.read_parquet(run_dir / "usage.parquet")
    app = usage[usage["service"] == "api"]
    metered = reported = 0.0
    for replica, samples in app.groupby("replica"):
        for first, last, gained in _stretches(samples.sort_values("ts")):
            served = records[(records["replica"] == replica) & (records["start"] >= first)
                             & (records["end"] <= last)]
            metered += gained
            reported += float(served["cpu_ms"].sum()) / 1000.0
    assert reported > 0
    # The killed replica is metered again once it restarted: alive, its counter climbing on
    # from the total it had when it was killed (not hidden under it).
    killed = app[app["replica"] == steps[0]["details"]["replicas"][0]].sort_values("ts")
    at_kill = killed[killed["ts"] <= steps[0]["start"]]["cpu_s"].max()
    back = killed[killed["ts"] >= steps[1]["end"]]
    assert back["alive"].all() and len(back) >= 3
    assert back["cpu_s"].iloc[-1] - at_kill >= 0.1, (at_kill, back["cpu_s"].tolist())
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


def _stretches(samples: pd.DataFrame) -> list[tuple[float, float, float]]:
    """``(first ts, last ts, CPU-seconds gained)`` of each stretch of a replica's cumulative
    counter; a counter that goes down (the replica restarted) starts a new stretch."""
    ts, cpu = samples["ts"].to_numpy(float), samples["cpu_s"].to_numpy(float)
    starts = [0, *(np.flatnonzero(np.diff(cpu) < 0) + 1), len(cpu)]
    return [(ts[a], ts[b - 1], cpu[b - 1] - cpu[a])
            for a, b in itertools.pairwise(starts) if b - a > 1]
