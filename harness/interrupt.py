"""SIGINT/SIGTERM become a flag the run checks at every wait, so teardown always runs."""

from __future__ import annotations

import signal
from typing import Any

import gevent
from gevent.event import Event

from harness.errors import Interrupted


class StopFlag:
    """Set by a signal; ``raise_if_set`` turns it into :class:`Interrupted` where it is safe."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.event = Event()
        self._handlers: list[Any] = []

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._handlers.append(gevent.signal_handler(sig, self._on_signal, sig.name))

    def uninstall(self) -> None:
        for handler in self._handlers:
            handler.cancel()
        self._handlers.clear()

    def _on_signal(self, name: str) -> None:
        if self.signal_name is None:  # the first signal wins; later ones only repeat it
            self.signal_name = name
        self.event.set()

    def raise_if_set(self) -> None:
        if self.signal_name is not None:
            raise Interrupted(self.signal_name)

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True when a stop was requested."""
        return bool(self.event.wait(timeout))
