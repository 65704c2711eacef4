"""The base image: ``debootstrap --variant=minbase`` into a scratch directory, then
``docker import`` of its tarball (no registry is involved).

debootstrap mounts ``proc``/``sys`` inside the target while it configures packages. If it is
interrupted those mounts can stay; the scratch directory is only ever removed after they were
unmounted, so cleaning up can never descend into the host's ``/proc``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from harness.errors import TargetError
from harness.images.catalog import BASE, HASH_LABEL, IMAGE_LABEL, SUITE, mirror

DEBOOTSTRAP_TIMEOUT_S = 900
SCRATCH_ROOT = Path("/var/tmp")


def build_base(client: docker.DockerClient, content_hash: str,
               log: Callable[[str], None]) -> None:
    """Create :data:`BASE` (tagged, labelled with ``content_hash``) or raise TargetError."""
    _require_tools()
    scratch = Path(tempfile.mkdtemp(prefix="harness-debootstrap-", dir=_scratch_root()))
    try:
        rootfs = scratch / "rootfs"
        log(f"debootstrap --variant=minbase {SUITE} ({mirror()})")
        _run(["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror()],
             "debootstrap", scratch / "debootstrap.log")
        tarball = scratch / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "--one-file-system", "-cf",
              str(tarball), "."], "tar", scratch / "tar.log")
        log(f"docker import -> {BASE.name}")
        _import(client, tarball, content_hash)
    finally:
        _remove_scratch(scratch)


def _scratch_root() -> Path:
    return SCRATCH_ROOT if SCRATCH_ROOT.is_dir() else Path(tempfile.gettempdir())


def _require_tools() -> None:
    if os.geteuid() != 0:
        raise TargetError("building the base image runs debootstrap, which needs root; run "
                          "`harness images bootstrap` as root (as .ci/docker-setup does)")
    missing = [tool for tool in ("debootstrap", "tar") if shutil.which(tool) is None]
    if missing:
        raise TargetError(f"building the base image needs {', '.join(missing)} on PATH "
                          "(Debian: apt-get install -y debootstrap)")


def _run(argv: list[str], what: str, log_path: Path) -> None:
    with log_path.open("wb") as out:
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=DEBOOTSTRAP_TIMEOUT_S,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TargetError(f"base image: {what} failed: {exc}") from exc
    if done.returncode != 0:
        tail = log_path.read_text("utf-8", "replace").strip().splitlines()[-12:]
        shown = "\n".join(f"    {line}" for line in tail)
        raise TargetError(f"base image: {what} exited with {done.returncode}:\n{shown}")


def _import(client: docker.DockerClient, tarball: Path, content_hash: str) -> None:
    repository, tag = BASE.name.rsplit(":", 1)
    changes = [f"LABEL {HASH_LABEL}={content_hash} {IMAGE_LABEL}={BASE.key}",
               'CMD ["/bin/bash"]']
    try:
        client.api.import_image_from_file(str(tarball), repository=repository, tag=tag,
                                          changes=changes)
        client.images.get(BASE.name)
    except docker.errors.DockerException as exc:
        raise TargetError(f"base image: docker import of {tarball} failed: {exc}") from exc


def _remove_scratch(scratch: Path) -> None:
    """Unmount whatever debootstrap left mounted below ``scratch``, then delete it."""
    prefix = str(scratch.resolve()) + "/"
    with open("/proc/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    with open("/proc/mounts", encoding="utf-8") as mounts:
        if any(line.split()[1].startswith(prefix) for line in mounts):
            return  # still mounted: leaving files behind beats deleting through a mount
    shutil.rmtree(scratch, ignore_errors=True)
