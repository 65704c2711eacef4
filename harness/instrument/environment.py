"""What the middleware reads from its environment: the replica id and optional Pyroscope."""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from harness.errors import TargetError

TagWrapper = Callable[[dict[str, str]], AbstractContextManager[Any]]

_pyroscope_configured = False


def default_replica() -> str:
    """``HARNESS_REPLICA`` if set, else ``<hostname>-<pid>``."""
    return os.environ.get("HARNESS_REPLICA") or f"{socket.gethostname()}-{os.getpid()}"


def pyroscope_tag_wrapper(replica: str) -> TagWrapper | None:
    """``pyroscope.tag_wrapper`` when ``HARNESS_PYROSCOPE_URL`` is set and pyroscope imports.

    The agent is configured once per process: application name ``HARNESS_SERVICE`` (default
    ``target``), pushing to ``HARNESS_PYROSCOPE_URL``, with a static ``replica`` tag.
    """
    global _pyroscope_configured
    url = os.environ.get("HARNESS_PYROSCOPE_URL")
    if not url:
        return None
    try:
        pyroscope = importlib.import_module("pyroscope")
    except ImportError:
        return None
    if not _pyroscope_configured:
        service = os.environ.get("HARNESS_SERVICE") or "target"
        try:
            rate = int(os.environ.get("HARNESS_PYROSCOPE_SAMPLE_RATE") or 100)
            pyroscope.configure(
                application_name=service, server_address=url, tags={"replica": replica},
                sample_rate=rate,
            )
        except Exception as exc:  # a foreign agent: any failure means no profiles
            raise TargetError(f"cannot start the Pyroscope agent for {url}: {exc}") from exc
        _pyroscope_configured = True
    wrapper: TagWrapper = pyroscope.tag_wrapper
    return wrapper
