"""A user's own compose file run as is, on a real engine, through the CLI: every container of
the project metered under its compose service name, limits read from the file, faults by
service name, and teardown of exactly that project (also on SIGTERM and on start-up errors).
The file: tests/docker/own/docker-compose.yml (web + cache + worker, bootstrapped images)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import docker
import pandas as pd
import pytest

from harness.stack.compose_engine import COMPOSE_PROJECT_LABEL
from tests.conftest import HARNESS, ROOT, run_cli

pytestmark = pytest.mark.docker
OWN = ROOT / "tests" / "docker" / "own"


def left_over(client: docker.DockerClient, project: str) -> list[str]:
    selector: dict[str, str | list[str] | bool] = {"label": f"{COMPOSE_PROJECT_LABEL}={project}"}
    return ([f"container {c.name}" for c in client.containers.list(all=True, filters=selector)]
            + [f"network {n.name}" for n in client.networks.list(filters=selector)]
            + [f"volume {v.name}" for v in client.volumes.list(filters=selector)])


def project_of(run_dir: Path) -> str:
    log = (run_dir / "logs" / "compose.log").read_text(encoding="utf-8")
    return log.split(" -p ", 1)[1].split()[0]


def test_own_compose_file_end_to_end(images: dict[str, str], docker_client: docker.DockerClient,
                                     tmp_path: Path) -> None:
    bystander = docker_client.containers.run(  # another project on the same engine
        images["DEBIAN_BASE_IMAGE"], ["sleep", "120"], detach=True,
        labels={COMPOSE_PROJECT_LABEL: "someone-else"})
    try:
        run_dir = tmp_path / "run"
        done = run_cli("run", OWN / "scenario.yaml", "--output", run_dir, timeout=300)
        assert done.returncode == 0, done.stderr
        bystander.reload()
        assert bystander.status == "running"
    finally:
        bystander.remove(force=True)
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    services = {s["name"]: s for s in manifest["services"]}
    assert list(services) == ["web", "cache", "worker"]
    assert (services["web"]["cpu"], services["web"]["memory"]) == (0.5, 256 * 2**20)
    assert services["cache"]["role"] == "cache" and services["cache"]["memory"] == 64 * 2**20
    assert (services["worker"]["cpu"], services["worker"]["billing"]) == (0.25, "usage")
    assert services["web"]["entry"] and services["web"]["port"]
    project = project_of(run_dir)
    assert project.startswith("harness-")
    assert {s["compose_project"] for s in services.values()} == {project}
    usage = pd.read_parquet(run_dir / "usage.parquet")
    assert set(usage["service"]) == {"web", "cache", "worker"}
    assert usage.groupby("service")["cpu_s"].max()["web"] > 0
    faults = [json.loads(line) for line in (run_dir / "faults.jsonl").read_text().splitlines()]
    assert [f["status"] for f in faults] == ["ok"] * 4, faults
    requests = pd.read_parquet(run_dir / "requests.parquet")
    assert set(requests["endpoint"]) == {"/", "missing"}  # the locustfile's names
    assert (requests["status"] == 200).sum() > 20
    assert left_over(docker_client, project) == []
    assert not (run_dir / "compose.json").exists()


BAD_HEALTH = f"""
name: own-404
target:
  compose: {OWN / "docker-compose.yml"}
  entry: web
  services:
    web: {{health: /nope, startup_timeout: 60s}}
traffic: {{users: 1, duration: 2s}}
requests: [{{name: home, path: /}}]
"""


def test_entry_health_404_fails_fast_and_leaves_nothing(
        images: dict[str, str], docker_client: docker.DockerClient, tmp_path: Path) -> None:
    scenario = tmp_path / "own-404.yaml"
    scenario.write_text(BAD_HEALTH, encoding="utf-8")
    run_dir = tmp_path / "run"
    started = time.monotonic()
    done = run_cli("run", scenario, "--output", run_dir, timeout=300)
    assert done.returncode == 3, done.stderr
    assert time.monotonic() - started < 45  # not the 60 s startup timeout
    assert "answered GET /nope with 404 File not found" in done.stderr
    assert left_over(docker_client, project_of(run_dir)) == []


def test_sigterm_mid_run_removes_the_project(images: dict[str, str],
                                              docker_client: docker.DockerClient,
                                              tmp_path: Path) -> None:
    scenario = _long_scenario(tmp_path / "own-long.yaml")
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([HARNESS, "run", str(scenario), "--output", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_services(run_dir)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    assert left_over(docker_client, project_of(run_dir)) == []


@pytest.mark.slow
def test_httpbin_compose_example(images: dict[str, str], docker_client: docker.DockerClient,
                                 tmp_path: Path) -> None:
    """The worked example: httpbin's own compose file (its image is built from wheels
    downloaded on the host by targets/httpbin/fetch-wheels.sh)."""
    fetched = subprocess.run(["bash", str(ROOT / "targets" / "httpbin" / "fetch-wheels.sh")],
                             capture_output=True, text=True, timeout=600, check=False)
    assert fetched.returncode == 0, fetched.stderr
    run_dir = tmp_path / "run"
    done = run_cli("run", ROOT / "scenarios" / "httpbin-compose.yaml", "--duration", "5",
                   "--output", run_dir, timeout=600)
    assert done.returncode == 0, done.stderr
    requests = pd.read_parquet(run_dir / "requests.parquet")
    assert {"GET /bytes/{n}", "GET /json", "GET /uuid"} <= set(requests["endpoint"])
    assert (requests["status"] == 200).all()
    assert left_over(docker_client, project_of(run_dir)) == []


def test_cleanup_after_a_killed_harness_removes_the_project(
        images: dict[str, str], docker_client: docker.DockerClient, tmp_path: Path) -> None:
    scenario = _long_scenario(tmp_path / "own-kill.yaml")
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([HARNESS, "run", str(scenario), "--output", str(run_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_services(run_dir)
    finally:
        proc.kill()  # SIGKILL: no teardown runs
        proc.wait(timeout=30)
    project = project_of(run_dir)
    assert left_over(docker_client, project)  # the kill left the project running
    done = run_cli("cleanup", run_dir, timeout=120)
    assert done.returncode == 0, done.stderr
    assert left_over(docker_client, project) == []
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "aborted"


def _long_scenario(path: Path) -> Path:
    """The own-compose scenario, anchored to tests/docker/own/, measuring 60 s."""
    path.write_text((OWN / "scenario.yaml").read_text().replace(
        "compose: docker-compose.yml", f"compose: {OWN / 'docker-compose.yml'}").replace(
        "requests: {locustfile: locustfile.py}",
        f"requests: {{locustfile: {OWN / 'locustfile.py'}}}").replace("6s", "60s"))
    return path


def _wait_for_services(run_dir: Path, timeout_s: float = 120) -> None:
    """Until the manifest lists the started services (the stack is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        manifest = run_dir / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text() or "{}").get("services"):
            return
        time.sleep(0.5)
