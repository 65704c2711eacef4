"""What the middleware reads from its environment: the replica id and optional Pyroscope.

The Pyroscope agent (``pyroscope-io`` 1.4, py-spy backend) and why it is configured so.
Measured on the shared 2-core VM, side by side (``bench/overhead_parts.py``, RESULTS.md 4b):

* It costs per sample, not per request. Each sample wakes the sampler thread, which reads the
  interpreter and every ``PyThreadState`` with ``process_vm_readv`` (~12 reads with waitress'
  8 threads, strace/perf) and hands the sample over a channel to a second agent thread that
  wakes too. A bare C ``nanosleep`` loop costs 22-28 µs CPU per wakeup on this VM, so the
  floor is ~65 µs + ~2 µs per Python thread per sample: 8.1-8.4 ms/s at 100 Hz on an idle
  target with 8 blocked threads (2 threads 6.8, 32 threads 13.2 ms/s).
* A sample that finds a thread holding the GIL reads its whole stack: ~165 reads for 22
  frames with the default ``LineNo.LastInstruction`` (each frame's line table), ~130 with
  ``LineNo.First``; one thread always busy (24 frames): 44 vs 33-40 ms/s. Frames are labelled by
  function and file only (``harness.profiling.pprof.frame_label``), so ``line_no=First``
  (each frame carries its function's first line) loses nothing the harness shows.
* ``pyroscope.tag_wrapper`` (a ``@contextmanager`` generator) costs 3.2 µs per request warm,
  ~50 µs cold (a call every 5 ms); :class:`_ThreadTags` calls ``add_thread_tag`` /
  ``remove_thread_tag`` directly: 1.8 µs warm, ~30 µs cold.
* No cheaper: ``oncpu=False`` (with ``gil_only`` no thread is checked for being on CPU; 8.1
  vs 8.4 ms/s idle, 48 vs 44 busy), ``report_pid/thread_id/thread_name``, ``enable_logging``;
  ``detect_subprocesses`` is gone in 1.4. Wrong: ``gil_only=False`` costs 13x (110 ms/s
  idle: it reads every thread's stack) and counts blocked threads as CPU;
  ``ProfilerImplementation.Stack`` (in-process reads: 9 ms/s busy) drops every thread tag.
* Sampling in process instead is dearer here: a Python thread waking 100 times a second
  costs ~56 µs of CPU per wake-up on this VM, ~96 µs once it reads the frames and each
  thread's CPU clock, against ~62 µs for the agent's whole idle sample (RESULTS.md 4b); and it
  must take the GIL from the thread it samples. A prototype (per-thread CPU clock deltas
  charged to the current stack, endpoint tags in a dict; not kept) measured 11.9 ms/s idle
  against the agent's 5.9 side by side in a quick 2-round probe run.
* Kept: ``gil_only=True`` (only the GIL holder is sampled, so blocked threads never show as
  CPU), ``oncpu=True`` (the default), 100 Hz unless ``HARNESS_PYROSCOPE_SAMPLE_RATE`` says
  otherwise. The split stays right: ``tests/integration/test_receiver.py`` runs this
  configuration (/heavy vs /light 75.0 % truth: 73.4-77.3 %, blocked threads 0.00 s).
"""
from __future__ import annotations

import functools
import importlib
import os
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import ModuleType, TracebackType
from typing import Any

from harness.errors import TargetError

__all__ = ["TagWrapper", "default_replica", "pyroscope_tag_wrapper"]

TagWrapper = Callable[[dict[str, str]], AbstractContextManager[Any]]
ThreadTagFn = Callable[[str, str], object]

DEFAULT_SAMPLE_RATE = 100
# pyroscope.configure options besides name, address, tags and rate (see the module docstring).
AGENT_OPTIONS: dict[str, bool] = {
    "oncpu": True,
    "gil_only": True,
    "report_pid": False,
    "report_thread_id": False,
    "report_thread_name": False,
    "enable_logging": False,
}

_pyroscope_configured = False


def default_replica() -> str:
    """``HARNESS_REPLICA`` if set, else ``<hostname>-<pid>``."""
    return os.environ.get("HARNESS_REPLICA") or f"{socket.gethostname()}-{os.getpid()}"


class _ThreadTags:
    """Tags the current thread's samples for the duration of a ``with`` block."""

    __slots__ = ("_add", "_remove", "_tags")

    def __init__(self, add: ThreadTagFn, remove: ThreadTagFn, tags: dict[str, str]) -> None:
        self._add = add
        self._remove = remove
        self._tags = tags

    def __enter__(self) -> None:
        for key, value in self._tags.items():
            self._add(key, value)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:  # fmt: skip
        for key, value in self._tags.items():
            self._remove(key, value)


def _sample_rate() -> int:
    raw = os.environ.get("HARNESS_PYROSCOPE_SAMPLE_RATE") or str(DEFAULT_SAMPLE_RATE)
    if not raw.isdigit() or int(raw) < 1:
        raise TargetError(f"HARNESS_PYROSCOPE_SAMPLE_RATE must be a positive integer, got {raw!r}")
    return int(raw)


def _configure(pyroscope: ModuleType, url: str, replica: str) -> None:
    """Start the agent: name ``HARNESS_SERVICE`` (default ``target``), static ``replica`` tag."""
    service = os.environ.get("HARNESS_SERVICE") or "target"
    rate = _sample_rate()
    try:
        pyroscope.configure(
            application_name=service, server_address=url, tags={"replica": replica},
            sample_rate=rate, line_no=pyroscope.LineNo.First, **AGENT_OPTIONS,
        )  # fmt: skip
    except Exception as exc:  # a foreign agent: any failure means no profiles
        raise TargetError(f"cannot start the Pyroscope agent for {url}: {exc}") from exc


def pyroscope_tag_wrapper(replica: str) -> TagWrapper | None:
    """A thread-tagging context manager factory when ``HARNESS_PYROSCOPE_URL`` is set and
    pyroscope imports; the agent is configured once per process (see the module docstring).
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
        _configure(pyroscope, url, replica)
        _pyroscope_configured = True
    return functools.partial(_ThreadTags, pyroscope.add_thread_tag, pyroscope.remove_thread_tag)
