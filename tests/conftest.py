"""Shared test helpers: the CLI as a subprocess, scenario files, leftover-process checks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

HARNESS = str(Path(sys.executable).with_name("harness"))
ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str | Path, timeout: float = 180, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `harness ARGS...` and return the finished process (text output)."""
    full_env = dict(os.environ) | (env or {})
    full_env.setdefault("COLUMNS", "160")
    return subprocess.run([HARNESS, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or ROOT, env=full_env, check=False)


def leftover_processes(run_dir: Path) -> list[str]:
    """Processes that still carry this run's marker (HARNESS_RUN_DIR) in their environment."""
    marker = str(run_dir.resolve())
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.environ().get("HARNESS_RUN_DIR") == marker:
                found.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])}")
        except (psutil.Error, OSError):
            continue
    return found


@pytest.fixture
def scenario_file(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a scenario YAML (dedented) into tmp_path and return its path."""

    def write(text: str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "run"
    yield path
    left = leftover_processes(path)
    for line in left:  # never leave anything behind, even when a test failed
        psutil.Process(int(line.split()[0])).kill()
    assert not left, f"processes left behind: {left}"
