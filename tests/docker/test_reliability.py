"""Reliability on the docker runtime, through the CLI as a subprocess.

* A replica OOM-killed by the kernel (a low ``memory:`` limit, one ``GET /alloc``) follows
  ``target.on_crash``: ``continue`` keeps running and exits 0, ``stop`` fails the run (exit 3);
  either way the crash is in the manifest and the report, and nothing is left on the engine.
* The interrupt matrix: SIGINT or SIGTERM at start-up (compose up running), in warm-up, while a
  kill or pause fault is active, and a second signal during ``compose down`` → exit 130, status
  ``interrupted``, faults reverted, nothing labelled left, ``harness report`` still renders.
  Each moment's signal lands at a seeded random offset inside its window (reproducible, varied).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pandas as pd
import pytest

from tests.conftest import HARNESS, ROOT, run_cli
from tests.docker.conftest import labelled

pytestmark = pytest.mark.docker
Writer = Callable[..., Path]
SEED = 20261127
EXIT_RUN_FAILED, EXIT_INTERRUPTED = 3, 130

OOM = """
name: docker-oom
target:
  runtime: docker
  on_crash: POLICY
  services:
    api:
      command: "{python} -m targets.sample"
      replicas: 2
      cpu: 0.5
      memory: 96Mi
traffic: {model: open, rate: 20, warmup: 1s, duration: 12s}
requests:
  - {name: cheap, path: /cheap}
"""


class HarnessRun:
    """``harness run`` in the background, watched through the artifacts it writes."""

    def __init__(self, scenario: Path, run_dir: Path, *extra: str) -> None:
        self.run_dir = run_dir
        self.proc = subprocess.Popen([HARNESS, "run", str(scenario), "--output", str(run_dir),
                                      *extra], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.project: str | None = None

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 240) -> None:
        deadline = time.time() + timeout
        while not check():
            if self.proc.poll() is not None:
                raise AssertionError(f"harness exited ({self.proc.returncode}) before {what}: "
                                     f"{self.proc.stderr.read() if self.proc.stderr else ''}")
            if time.time() > deadline:
                raise AssertionError(f"no {what} within {timeout:.0f} s")
            time.sleep(0.05)
        if self.project is None and (self.run_dir / "compose.json").is_file():
            self.project = json.loads((self.run_dir / "compose.json").read_text())["project"]

    def manifest(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.run_dir / "manifest.json").read_text()))
        except (OSError, ValueError):
            return {}

    def phase(self) -> str | None:
        phases = self.manifest().get("phases") or []
        return str(phases[-1]["name"]) if phases else None

    def faults(self) -> list[dict[str, Any]]:
        path = self.run_dir / "faults.jsonl"
        text = path.read_text() if path.is_file() else ""
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    def compose_calls(self) -> str:
        log = self.run_dir / "logs" / "compose.log"
        return "\n".join(line for line in (log.read_text(errors="replace") if log.is_file()
                                           else "").splitlines() if line.startswith("$ "))

    def finish(self, timeout: float = 180) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def stop(self) -> None:
        """Never leave a run behind, even when a test failed half-way: SIGTERM, then SIGKILL
        and ``harness cleanup`` (which removes what carries the run's project label)."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            run_cli("cleanup", self.run_dir, "--force")


def _port_of(manifest: dict[str, Any], name: str) -> int:
    return int(next(s["port"] for s in manifest["services"] if s["name"] == name))


def _alloc(port: int, mb: int) -> None:
    """One request that makes the replica behind the balancer allocate ``mb`` MiB."""
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/alloc?mb={mb}", timeout=30).read()
    except (urllib.error.URLError, OSError):
        pass  # the replica died mid-request: the balancer answers 502 or drops the connection


@pytest.mark.parametrize("policy", ["continue", "stop"])
def test_an_oom_killed_replica_follows_the_crash_policy(
        images: dict[str, str], docker_client: docker.DockerClient, scenario_file: Writer,
        run_dir: Path, policy: str) -> None:
    run = HarnessRun(scenario_file(OOM.replace("POLICY", policy)), run_dir)
    try:
        run.wait_for("the measured phase", lambda: run.phase() == "baseline")
        time.sleep(2.0)  # both replicas serve for a while first
        _alloc(_port_of(run.manifest(), "api-lb"), 256)  # 2.7 x the 96 MiB limit
        code, err = run.finish()
    finally:
        run.stop()
    manifest = run.manifest()
    assert code == (0 if policy == "continue" else EXIT_RUN_FAILED), err
    assert manifest["status"] == ("completed" if policy == "continue" else "failed")
    crashes = manifest["crashes"]
    assert [(c["service"], c["exit_code"], c["oom_killed"], c["phase"]) for c in crashes] == [
        ("api", 137, True, "baseline")], crashes
    victim = crashes[0]["replica"]
    records = pd.read_parquet(run_dir / "requests.parquet")
    served = records[records["replica"].fillna("").str.startswith(victim)]
    assert len(served) > 0 and served["end"].max() <= crashes[0]["at"]  # kept up to the crash
    if policy == "continue":
        after = records[records["start"] > crashes[0]["at"] + 1]
        assert (after["status"] == 200).sum() > 50  # the other replica carried on
    else:
        assert "OOM-killed" in manifest["error"] and "crashed" in manifest["error"]
    report = (run_dir / "report.html").read_text()
    assert 'id="crashes"' in report and victim in report and "OOM-killed" in report
    assert run.project and not labelled(docker_client, run.project)


MATRIX = """
name: docker-interrupts
target:
  services:
    api:
      command: "{python} -m targets.sample"
      cpu: 0.5
      memory: 256Mi
traffic: {model: open, rate: 20, warmup: 4s, duration: 12s}
requests:
  - {name: cheap, path: /cheap}
faults:
  - {name: killed, kind: kill, target: api, replicas: 1, start: 1s, duration: 4s}
  - {name: paused, kind: pause, target: api, replicas: 1, start: 7s, duration: 4s}
"""
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


def _open_faults(run: HarnessRun) -> set[str]:
    opened: set[str] = set()
    for step in run.faults():
        (opened.add if step["action"] == "inject" else opened.discard)(step["fault"])
    return opened


def _reach(run: HarnessRun, moment: str, rng: random.Random) -> str:
    """Wait for ``moment``'s window, sleep a random offset inside it; what landed where."""
    if moment == "startup":
        run.wait_for("compose up", lambda: "up -d" in run.compose_calls())
        time.sleep(rng.uniform(0.0, 0.8))
        return "startup"
    if moment == "warmup":
        run.wait_for("warm-up", lambda: run.phase() == "warmup")
        time.sleep(rng.uniform(0.0, 2.5))
        return "warmup"
    fault = rng.choice(["killed", "paused"])  # "fault" and "teardown" (its first signal)
    run.wait_for(f"fault {fault}", lambda: fault in _open_faults(run))
    time.sleep(rng.uniform(0.0, 2.0))
    return fault


@pytest.mark.parametrize("moment", ["startup", "warmup", "fault", "teardown"])
@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_interrupt_matrix_on_docker(images: dict[str, str], docker_client: docker.DockerClient,
                                    scenario_file: Writer, run_dir: Path, moment: str,
                                    name: str) -> None:
    rng = random.Random(f"{SEED}-{moment}-{name}")
    run = HarnessRun(scenario_file(MATRIX), run_dir, "--runtime", "docker")
    try:
        landed = _reach(run, moment, rng)
        run.proc.send_signal(SIGNALS[name])
        if moment == "teardown":  # a second signal while compose down runs
            run.wait_for("compose down", lambda: "down -v" in run.compose_calls(), timeout=60)
            time.sleep(rng.uniform(0.0, 0.5))
            run.proc.send_signal(signal.SIGINT if name == "SIGTERM" else signal.SIGTERM)
        code, err = run.finish()
    finally:
        run.stop()
    manifest = run.manifest()
    assert code == EXIT_INTERRUPTED, err
    assert "Traceback" not in err
    assert manifest["status"] == "interrupted" and manifest["error"] == f"interrupted by {name}"
    assert (run.phase() is None) == (landed == "startup")  # the signal landed in its window
    steps = run.faults()
    assert all(s["status"] == "ok" for s in steps), steps
    injected = [s["fault"] for s in steps if s["action"] == "inject"]
    assert sorted(injected) == sorted(s["fault"] for s in steps if s["action"] == "revert")
    if landed in ("killed", "paused"):
        assert landed in injected
    assert run.project and not labelled(docker_client, run.project)
    report = run_cli("report", run_dir)
    assert report.returncode == 0, report.stderr
    assert (run_dir / "report.html").is_file()
