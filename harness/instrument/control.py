"""Run-time settings the harness changes while a target runs (the logging-explosion fault).

The harness writes JSON such as ``{"log_level": "DEBUG"}`` to the file named by
``HARNESS_CONTROL_FILE``; a daemon thread polls its modification time and applies it.
``{"log_level": null}`` (or a removed file) restores the level the service started with.
A file is used rather than an HTTP endpoint so that every replica sharing a port sees it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

POLL_S = 0.25


class ControlWatcher(threading.Thread):
    def __init__(self, path: Path) -> None:
        super().__init__(name="harness-control", daemon=True)
        self.path = path
        self.initial_level = logging.getLogger().level
        self._mtime: float | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(POLL_S):
            self.check()

    def stop(self) -> None:
        self._stop_event.set()

    def check(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            mtime = None
        if mtime == self._mtime:
            return
        self._mtime = mtime
        self.apply(self._read() if mtime is not None else {})

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def apply(self, settings: dict[str, object]) -> None:
        level = settings.get("log_level")
        root = logging.getLogger()
        if isinstance(level, str) and level.upper() in logging.getLevelNamesMapping():
            root.setLevel(level.upper())
        else:
            root.setLevel(self.initial_level)


def start_control_watcher() -> ControlWatcher | None:
    """Start watching ``HARNESS_CONTROL_FILE`` when the harness set it."""
    name = os.environ.get("HARNESS_CONTROL_FILE")
    if not name:
        return None
    watcher = ControlWatcher(Path(name))
    watcher.start()
    return watcher
