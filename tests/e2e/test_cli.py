"""The CLI as a subprocess: exit codes, messages and files written."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import HARNESS, ROOT, leftover_processes, run_cli

SHORT = """
name: short
target:
  services:
    api:
      command: "{python} -m targets.sample"
      startup_timeout: 20s
traffic:
  model: open
  rate: 30
  warmup: 1s
  duration: 4s
requests:
  - name: GET /cpu
    path: /cpu?ms=5
  - name: GET /cheap
    path: /cheap
    weight: 3
"""

Writer = Callable[..., Path]


def test_validate_ok_and_bad(scenario_file: Writer) -> None:
    good = run_cli("validate", scenario_file(SHORT))
    assert good.returncode == 0 and good.stdout.startswith("OK")
    bad = run_cli("validate", scenario_file(SHORT.replace("rate: 30", "rat: 30"), "bad.yaml"))
    assert bad.returncode == 2
    assert "traffic.rat" in bad.stderr and "line 10" in bad.stderr and "rate" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_run_writes_artifacts_and_names_the_report(scenario_file: Writer, run_dir: Path) -> None:
    done = run_cli("run", scenario_file(SHORT), "--output", run_dir)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last == f"report: {run_dir / 'report.html'}"
    for name in ("manifest.json", "requests.parquet", "usage.parquet", "summary.json",
                 "report.html", "ledger.csv", "ledger.parquet"):
        assert (run_dir / name).is_file(), name
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["requests"] > 50 and summary["cost_per_call_usd"] > 0
    assert {e["name"] for e in summary["endpoints"]} == {"GET /cpu", "GET /cheap"}
    assert not leftover_processes(run_dir)
    again = run_cli("report", run_dir)
    assert again.returncode == 0 and "report.html" in again.stdout


def test_dry_run_starts_nothing(scenario_file: Writer, run_dir: Path) -> None:
    done = run_cli("run", scenario_file(SHORT), "--dry-run", "--output", run_dir)
    assert done.returncode == 0
    assert "dry run" in done.stdout and "warm-up" in done.stdout
    assert not run_dir.exists()


@pytest.mark.parametrize("args, needle", [
    (["run", "does/not/exist.yaml"], "does/not/exist.yaml"),
    (["report", "/nonexistent-run-dir"], "not a run directory"),
])
def test_bad_paths_exit_2(args: list[str], needle: str) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert needle in done.stderr and "Traceback" not in done.stderr


def test_unknown_price_book_exit_2(scenario_file: Writer, run_dir: Path) -> None:
    done = run_cli("run", scenario_file(SHORT), "--price-book", "no-such-book",
                   "--output", run_dir)
    assert done.returncode == 2 and "no-such-book" in done.stderr
    assert "Traceback" not in done.stderr and not run_dir.exists()


def test_target_that_exits_at_once_exit_3(scenario_file: Writer, run_dir: Path) -> None:
    boom = 'command: ["{python}", "-c", "import sys; sys.exit(\'boom: cannot start\')"]'
    text = SHORT.replace('command: "{python} -m targets.sample"', boom)
    done = run_cli("run", scenario_file(text), "--output", run_dir)
    assert done.returncode == 3, done.stderr
    assert "exited with code 1" in done.stderr and "boom: cannot start" in done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "failed"


def test_health_check_that_never_passes_exit_3(scenario_file: Writer, run_dir: Path) -> None:
    text = SHORT.replace("startup_timeout: 20s", "startup_timeout: 3s\n      health: /nope")
    done = run_cli("run", scenario_file(text), "--output", run_dir)
    assert done.returncode == 3
    # the sample answers 404 there: a steady 4xx fails before the timeout, naming the status
    assert "answered GET /nope with 404" in done.stderr


def test_port_already_in_use_exit_3(scenario_file: Writer, run_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        text = SHORT.replace("{python} -m targets.sample",
                             f"{{python}} -m http.server --bind 127.0.0.1 {port}")
        done = run_cli("run", scenario_file(text), "--output", run_dir)
    assert done.returncode == 3
    assert "Address already in use" in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_artifacts_and_stops_everything(
        scenario_file: Writer, run_dir: Path, sig: signal.Signals) -> None:
    text = SHORT.replace("duration: 4s", "duration: 60s")
    proc = subprocess.Popen([HARNESS, "run", str(scenario_file(text)), "--output", str(run_dir)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (run_dir / "requests.parquet.parts").is_dir():
        time.sleep(0.2)
    time.sleep(1.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert (run_dir / "requests.parquet").is_file() and (run_dir / "report.html").is_file()
    assert not leftover_processes(run_dir)


def test_cleanup_after_the_harness_is_killed(scenario_file: Writer, run_dir: Path) -> None:
    text = SHORT.replace("duration: 4s", "duration: 60s").replace(
        "    api:\n", "    api:\n      replicas: 2\n")
    proc = subprocess.Popen([HARNESS, "run", str(scenario_file(text)), "--output", str(run_dir)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = run_dir / "requests.parquet.parts"
    deadline = time.time() + 60
    while time.time() < deadline and not (parts.is_dir() and any(parts.iterdir())):
        time.sleep(0.2)
    proc.kill()  # SIGKILL: no teardown runs
    proc.wait(timeout=10)
    assert leftover_processes(run_dir), "the targets should have outlived the killed harness"
    done = run_cli("cleanup", run_dir)
    assert done.returncode == 0, done.stderr
    assert "marked aborted" in done.stdout
    assert not leftover_processes(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "aborted"
    import pandas as pd

    assert len(pd.read_parquet(run_dir / "requests.parquet")) > 0  # the parts were kept
    assert run_cli("report", run_dir).returncode == 0


CRASHING = SHORT.replace('command: "{python} -m targets.sample"',
                         'command: "{python} -m targets.sample"\n      replicas: 2').replace(
    "duration: 4s", "duration: 8s")


@pytest.mark.parametrize("policy, code", [("continue", 0), ("stop", 3)])
def test_a_replica_that_crashes_mid_run_follows_the_policy(
        scenario_file: Writer, run_dir: Path, policy: str, code: int) -> None:
    import psutil

    text = CRASHING.replace("target:\n", f"target:\n  on_crash: {policy}\n")
    proc = subprocess.Popen([HARNESS, "run", str(scenario_file(text)), "--output", str(run_dir)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (run_dir / "requests.parquet.parts").is_dir():
        time.sleep(0.2)
    time.sleep(2)
    victim = next(p for p in psutil.process_iter()
                  if p.pid in {int(x.split()[0]) for x in leftover_processes(run_dir)}
                  and p.environ().get("HARNESS_REPLICA") == "api-1")
    victim.kill()  # not the harness's doing: a crash
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == code, err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [c["replica"] for c in manifest["crashes"]] == ["api-1"]
    assert manifest["status"] == ("completed" if policy == "continue" else "failed")
    import pandas as pd

    records = pd.read_parquet(run_dir / "requests.parquet")
    assert (records["replica"] == "api-1").any()  # what it served before the crash is kept
    assert (run_dir / "report.html").is_file()
    assert not leftover_processes(run_dir)


SLOW_START = SHORT.replace(
    'command: "{python} -m targets.sample"',
    'command: ["sh", "-c", "sleep 3 && exec {python} -m targets.sample"]').replace(
    "duration: 4s", "duration: 30s").replace("warmup: 1s", "warmup: 6s")


@pytest.mark.parametrize("moment", ["startup", "warmup", "teardown"])
def test_interrupt_matrix_leaves_nothing_running(scenario_file: Writer, run_dir: Path,
                                                 moment: str) -> None:
    """SIGINT during start-up, warm-up, and a second SIGTERM during teardown."""
    proc = subprocess.Popen([HARNESS, "run", str(scenario_file(SLOW_START)), "--output",
                             str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not leftover_processes(run_dir):
        time.sleep(0.1)  # the stack is starting (its first process exists)
    if moment != "startup":
        while time.time() < deadline and not (run_dir / "requests.parquet.parts").is_dir():
            time.sleep(0.1)
        time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    if moment == "teardown":
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)  # a second signal must not cut the teardown short
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    assert not leftover_processes(run_dir)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("after_s", [0.4, 1.2])
def test_signal_while_the_command_starts_is_a_clean_interrupt(
        scenario_file: Writer, run_dir: Path, sig: signal.Signals, after_s: float) -> None:
    """A signal while the CLI parses and imports (before a run installs its handlers): exit
    130 and one line, never SIGTERM's default kill or a KeyboardInterrupt traceback."""
    proc = subprocess.Popen([HARNESS, "run", str(scenario_file(SHORT)), "--output", str(run_dir)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after_s)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not leftover_processes(run_dir)
    manifest = run_dir / "manifest.json"
    if manifest.exists():  # the run had begun: it says so
        assert json.loads(manifest.read_text())["status"] == "interrupted"


def test_signals_while_the_cli_exits_never_kill_it(scenario_file: Writer, run_dir: Path) -> None:
    """SIGTERM after everything is written (the summary is out, the interpreter shuts down,
    pyarrow's threads are alive): the exit code stays the command's own, never a kill."""
    proc = subprocess.Popen([HARNESS, "run", str(scenario_file(SHORT)), "--output", str(run_dir)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while time.time() < deadline and not (run_dir / "report.html").exists():
        time.sleep(0.02)
    while proc.poll() is None and time.time() < deadline:
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.01)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, 130), (proc.returncode, err)
    assert "Traceback" not in err
