"""``bootstrap_images``: build the docker runtime's images locally, once per content hash.

Order: the Debian base (debootstrap + docker import), then the images built ``FROM`` it (python,
redis, postgres, haproxy). An image whose ``io.cost-harness.content-hash`` label already equals
the hash of its inputs is skipped, so a second call costs a few engine look-ups. The image names
are written to ``images.env`` (compose variables), which the compose stack passes to compose.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import docker.errors

from harness.errors import TargetError
from harness.images import catalog
from harness.images.catalog import BASE, DERIVED, HASH_LABEL, IMAGE_LABEL, ImageSpec
from harness.images.debian import build_base
from harness.images.wheelhouse import fill_wheelhouse
from harness.stack.compose_engine import connect

Log = Callable[[str], None]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def images_env_path() -> Path:
    """``$HARNESS_IMAGES_ENV``, else ``$XDG_CACHE_HOME/cost-harness/images.env``."""
    override = os.environ.get("HARNESS_IMAGES_ENV")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "cost-harness" / "images.env"


def bootstrap_images(force: bool = False, progress: Log | None = None) -> dict[str, str]:
    """Build what is missing or stale (everything with ``force``); return ``{VAR: image}``.

    Raises :class:`TargetError` (no engine, debootstrap or pip failure, a failing Dockerfile)
    with the failing step's last output lines. A failed build leaves no container behind.
    """
    log = progress or (lambda _line: None)
    client = connect()
    env_path = images_env_path()
    with _lock(env_path.with_suffix(".lock")):
        parent = catalog.base_hash()
        if force or not _current(client, BASE, parent):
            build_base(client, parent, log)
        else:
            log(f"{BASE.name}: up to date")
        for spec in DERIVED:
            wanted = catalog.derived_hash(spec, parent)
            if force or not _current(client, spec, wanted):
                _build(client, spec, wanted, log)
            else:
                log(f"{spec.name}: up to date")
        names = {spec.var: spec.name for spec in (BASE, *DERIVED)}
        _write_env(env_path, names)
    return names


def _current(client: docker.DockerClient, spec: ImageSpec, content_hash: str) -> bool:
    try:
        image = client.images.get(spec.name)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.DockerException as exc:
        raise TargetError(f"cannot inspect image {spec.name}: {exc}") from exc
    return bool(image.labels.get(HASH_LABEL) == content_hash)


def _build(client: docker.DockerClient, spec: ImageSpec, content_hash: str, log: Log) -> None:
    log(f"building {spec.name}")
    previous = _image_id(client, spec.name)
    with tempfile.TemporaryDirectory(prefix=f"harness-image-{spec.key}-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(catalog.context_dir(spec), context)
        if spec is catalog.PYTHON:
            log("  wheelhouse: pip download (targets' dependencies) + project wheel")
            fill_wheelhouse(context)
        build_image(client, context, spec.name, {HASH_LABEL: content_hash,
                                                 IMAGE_LABEL: spec.key},
                    {"BASE_IMAGE": BASE.name})
    if previous is not None and previous != _image_id(client, spec.name):
        try:
            client.images.remove(previous, noprune=False)
        except docker.errors.DockerException:
            pass  # still used by a container: the engine keeps it, that is fine


def build_image(client: docker.DockerClient, context: Path, tag: str,
                labels: dict[str, str], buildargs: dict[str, str]) -> None:
    """``docker build`` of ``context``; a failing step is a TargetError with its output."""
    try:
        client.images.build(path=str(context), tag=tag, labels=labels, buildargs=buildargs,
                            rm=True, forcerm=True, pull=False)
    except docker.errors.BuildError as exc:
        text = "".join(str(chunk.get("stream", "")) for chunk in exc.build_log
                       if isinstance(chunk, dict))
        lines = [line for line in _ANSI.sub("", text).splitlines() if line.strip()]
        shown = "\n".join(f"    {line}" for line in _worst(lines))
        raise TargetError(f"image {tag}: the build failed: {exc.msg}\n{shown}") from exc
    except (docker.errors.DockerException, OSError) as exc:
        raise TargetError(f"image {tag}: the build failed: {exc}") from exc


def _worst(lines: list[str]) -> list[str]:
    """The build's error lines when it printed any, else its last lines."""
    errors = [line for line in lines if "ERROR" in line or "error:" in line.lower()]
    return (errors or lines)[-12:]


def _image_id(client: docker.DockerClient, name: str) -> str | None:
    try:
        return client.images.get(name).id
    except docker.errors.DockerException:
        return None


def load_images_env(path: Path | None = None) -> dict[str, str]:
    """The ``VAR=image`` lines of ``images.env`` (empty when it does not exist)."""
    source = path or images_env_path()
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines()
             if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def _write_env(path: Path, names: dict[str, str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# Images built by `harness images bootstrap` (compose variables)."]
        lines += [f"{var}={name}" for var, name in names.items()]
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise TargetError(f"cannot write {path}: {exc.strerror or exc}") from exc


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    """One bootstrap at a time per cache directory (concurrent runs wait for each other)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
    except OSError as exc:
        raise TargetError(f"cannot create {path}: {exc.strerror or exc}") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
