"""`harness cleanup`: after the harness itself was killed (SIGKILL, OOM, power loss), find what
it left — processes by the run marker and pid files, data directories, Parquet parts, docker
resources by project label — remove it, and mark the run ``aborted``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness import artifacts as art
from harness.artifacts.recover import recover_parts
from harness.stack.local import PIDS_FILE


@dataclass
class Cleaned:
    run_dir: Path
    killed: list[int] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: str | None = None


def stale_runs(root: Path) -> list[Path]:
    """Run directories under ``root`` whose manifest still says ``running``."""
    found = []
    for manifest in sorted(root.glob("**/" + art.MANIFEST)):
        try:
            status = json.loads(manifest.read_text(encoding="utf-8")).get("status")
        except (OSError, ValueError):
            continue
        if status == "running":
            found.append(manifest.parent)
    return found


def _owner_alive(manifest: art.Manifest) -> bool:
    pid = getattr(manifest, "harness_pid", None)
    if not isinstance(pid, int):
        return False
    try:
        proc = psutil.Process(pid)
        return proc.is_running() and any("harness" in part for part in proc.cmdline())
    except psutil.Error:
        return False


def _marked(run_dir: Path) -> list[psutil.Process]:
    marker = str(run_dir.resolve())
    out = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("HARNESS_RUN_DIR") == marker:
                out.append(proc)
        except (psutil.Error, OSError):
            continue
    return out


def _kill(procs: list[psutil.Process]) -> list[int]:
    for proc in procs:
        for sig in (signal.SIGCONT, signal.SIGKILL):  # a paused process must not stay paused
            try:
                if os.getpgid(proc.pid) == proc.pid:
                    os.killpg(proc.pid, sig)  # the whole group the harness started
                else:
                    proc.send_signal(sig)
            except (OSError, psutil.Error):
                pass
    psutil.wait_procs(procs, timeout=5)
    return [p.pid for p in procs]


def clean_run(run_dir: Path, force: bool = False) -> Cleaned:
    manifest = art.read_manifest(run_dir)
    done = Cleaned(run_dir)
    if manifest.status != "running":
        done.skipped = f"status is {manifest.status}: nothing to clean"
        return done
    if _owner_alive(manifest) and not force:
        done.skipped = "its harness process is still running (use --force to clean anyway)"
        return done
    done.killed = _kill(_marked(run_dir))
    pids = run_dir / PIDS_FILE
    if pids.is_file():
        data_dir = json.loads(pids.read_text(encoding="utf-8")).get("data_dir")
        if data_dir and Path(data_dir).name.startswith("harness-data-"):
            shutil.rmtree(data_dir, ignore_errors=True)
            done.removed.append(data_dir)
        pids.unlink()
    done.removed += _sweep_docker(run_dir)
    recover_parts(run_dir)
    manifest.status = "aborted"
    manifest.error = ("the harness stopped without finishing (killed?); "
                      "cleaned up by `harness cleanup`")
    manifest.ended_at = manifest.ended_at or time.time()
    art.write_manifest(run_dir, manifest)
    return done


def _sweep_docker(run_dir: Path) -> list[str]:
    """The docker runtime records its compose project in ``compose.json`` until ``down``."""
    state = run_dir / "compose.json"
    try:
        project = json.loads(state.read_text(encoding="utf-8")).get("project")
    except (OSError, ValueError):
        return []
    if not isinstance(project, str) or not project.startswith("harness-"):
        return []
    from harness.errors import TargetError
    from harness.stack.compose_engine import connect, sweep

    try:
        problems = sweep(connect(), project)
    except TargetError as exc:
        return [f"docker project {project}: not swept ({exc})"]
    if not problems:
        state.unlink(missing_ok=True)
    return [f"docker project {project}"] + problems
