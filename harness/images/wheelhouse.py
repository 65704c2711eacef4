"""The Python image's wheelhouse, built on the host (containers cannot reach PyPI).

``wheels/deps``: the targets' runtime requirements (``docker/python/requirements.txt``) as
binary wheels, pinned to the versions installed beside the harness. ``wheels/project``: a wheel
of the project built from a copy of its source (the working tree is never written to).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from harness.errors import TargetError
from harness.images.catalog import (
    PROJECT_PACKAGES,
    PROJECT_ROOT,
    host_constraints,
    project_source_files,
)

PIP_TIMEOUT_S = 600


def fill_wheelhouse(context: Path) -> None:
    """Write ``context/wheels/deps`` (with its requirements.txt) and ``context/wheels/project``."""
    deps, project = context / "wheels" / "deps", context / "wheels" / "project"
    deps.mkdir(parents=True)
    project.mkdir(parents=True)
    requirements = deps / "requirements.txt"
    shutil.copyfile(context / "requirements.txt", requirements)
    constraints = context / "constraints.txt"
    constraints.write_text("\n".join(host_constraints()) + "\n", encoding="utf-8")
    _pip(["download", "--only-binary=:all:", "--dest", str(deps), "-r", str(requirements),
          "-c", str(constraints)], "download the targets' dependencies")
    source = _copy_source(context / "source")
    _pip(["wheel", "--no-deps", "--wheel-dir", str(project), str(source)],
         "build the project wheel")
    shutil.rmtree(source)
    constraints.unlink()


def _copy_source(dest: Path) -> Path:
    for path in project_source_files():
        target = dest / path.relative_to(PROJECT_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    for package in PROJECT_PACKAGES:
        (dest / package).mkdir(exist_ok=True)
    return dest


def _pip(args: list[str], what: str) -> None:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetError(f"python image: pip could not {what}: {exc}") from exc
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).strip().splitlines()
        errors = [line for line in lines if "ERROR" in line] or lines[-10:]
        shown = "\n".join(f"    {line}" for line in errors[-10:])
        raise TargetError(f"python image: pip could not {what} (exit {done.returncode}):\n"
                          f"{shown}")
