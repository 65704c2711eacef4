"""SIGINT/SIGTERM become a flag the run checks at every wait, so teardown always runs."""

from __future__ import annotations

import signal
from typing import Any

from gevent.event import Event

from harness.errors import Interrupted
from harness.signals import take_held_signal


class StopFlag:
    """Set by a signal; ``raise_if_set`` turns it into :class:`Interrupted` where it is safe."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.event = Event()
        self._previous: dict[signal.Signals, Any] = {}

    def install(self) -> None:
        """Plain Python handlers (not event-loop watchers, whose removal resets the signal to
        its default action and lets a late signal kill the process): the run's loop wakes at
        least every tick, so a signal is seen within a fraction of a second."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(
                sig, lambda signum, frame: self._on_signal(signal.Signals(signum).name))
        held = take_held_signal()  # one that came while the command started: stop at once
        if held is not None:
            self._on_signal(held.name)

    def uninstall(self) -> None:
        """The handlers from before :meth:`install` again: under the CLI, a signal from now on
        raises KeyboardInterrupt (harness.signals; the CLI exits 130)."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)

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

