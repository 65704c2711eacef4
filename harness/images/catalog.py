"""The images the docker runtime uses, where their recipes live, and their content hashes.

An image is rebuilt only when its content hash changes. The hash covers everything that goes
into the image: the Debian suite and mirror (base), the build context under ``docker/``, the
base image's own hash and, for the Python image, the project's source files and the versions of
the Python packages installed next to the harness (the wheelhouse is pinned to them).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import TargetError

HASH_LABEL = "io.cost-harness.content-hash"
IMAGE_LABEL = "io.cost-harness.image"
RECIPE_VERSION = "1"  # bump to rebuild every image after a change outside the hashed inputs

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = PROJECT_ROOT / "docker"
PROJECT_FILES = ("pyproject.toml", "README.md")
PROJECT_PACKAGES = ("harness", "targets")
_SKIP_PARTS = frozenset({"__pycache__"})
_SKIP_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """One image: the compose variable that names it, its tag, and its recipe directory."""

    key: str
    var: str
    name: str
    context: str | None  # directory under docker/; None for the debootstrapped base


BASE = ImageSpec("debian", "DEBIAN_BASE_IMAGE", f"cost-harness/debian:{SUITE}", None)
PYTHON = ImageSpec("python", "PYTHON_BASE_IMAGE", "cost-harness/python:3.11", "python")
REDIS = ImageSpec("redis", "REDIS_IMAGE", "cost-harness/redis:7", "redis")
POSTGRES = ImageSpec("postgres", "POSTGRES_IMAGE", "cost-harness/postgres:15", "postgres")
LB = ImageSpec("haproxy", "LB_IMAGE", "cost-harness/haproxy:2.6", "haproxy")
DERIVED = (PYTHON, REDIS, POSTGRES, LB)
ALL = (BASE, *DERIVED)


def mirror() -> str:
    return os.environ.get("HARNESS_DEBIAN_MIRROR") or DEFAULT_MIRROR


def base_hash() -> str:
    return _digest([f"recipe={RECIPE_VERSION}", f"debootstrap minbase {SUITE} {mirror()}"])


def context_dir(spec: ImageSpec) -> Path:
    assert spec.context is not None
    path = DOCKER_DIR / spec.context
    if not (path / "Dockerfile").is_file():
        raise TargetError(
            f"image {spec.name}: no Dockerfile in {path}; `harness images bootstrap` needs the "
            "project's source checkout (docker/ next to harness/)"
        )
    return path


def derived_hash(spec: ImageSpec, parent_hash: str) -> str:
    """Hash of a built image: recipe + base; the Python image adds source and pins."""
    parts = [f"recipe={RECIPE_VERSION}", f"base={parent_hash}", *_tree(context_dir(spec))]
    if spec is PYTHON:
        parts += project_source_lines() + [f"pin {line}" for line in host_constraints()]
    return _digest(parts)


def project_source_files() -> list[Path]:
    """The files a project wheel is built from (what the Python image installs)."""
    files = [PROJECT_ROOT / name for name in PROJECT_FILES if (PROJECT_ROOT / name).is_file()]
    for package in PROJECT_PACKAGES:
        files += [p for p in sorted((PROJECT_ROOT / package).rglob("*")) if _wanted(p)]
    return files


def project_source_lines() -> list[str]:
    return [_file_line(path, PROJECT_ROOT) for path in project_source_files()]


def host_constraints() -> list[str]:
    """``name==version`` of every distribution installed beside the harness (but itself)."""
    pins = {
        dist.metadata["Name"].lower(): dist.version
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"] and dist.metadata["Name"].lower() != "cost-harness"
    }
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def _wanted(path: Path) -> bool:
    return (path.is_file() and not _SKIP_PARTS.intersection(path.parts)
            and not path.name.endswith(_SKIP_SUFFIXES))


def _tree(root: Path) -> list[str]:
    return [_file_line(p, root) for p in sorted(root.rglob("*")) if _wanted(p)]


def _file_line(path: Path, root: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    mode = "x" if os.access(path, os.X_OK) else "-"
    return f"{path.relative_to(root).as_posix()} {mode} {digest}"


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
