"""SIGINT/SIGTERM as KeyboardInterrupt, raised only where unwinding is safe.

Outside a run (while the CLI parses and imports, and after a run has torn down), both signals
end the command with exit 130 through KeyboardInterrupt. Raised at an arbitrary bytecode that is
not always safe: once gevent has patched ``threading``, the import system's module locks and
``logging``'s lock are gevent locks, and a KeyboardInterrupt that unwinds through the middle of
taking or releasing one leaves it held; the next import then fails with gevent's ``LoopExit:
This operation would block forever`` instead of the interrupt. And one raised in a ``__del__``
or weakref callback is printed as "Exception ignored" and lost. So:

- in the main greenlet, the interrupt is raised at once unless the stack is inside the import
  system, gevent, ``threading`` or ``logging``;
- when gevent's hub (or another greenlet) runs, it is thrown into the main greenlet at the point
  where that waits, the way gevent delivers its own timeouts;
- deferred, it is tried again by a short ``SIGALRM`` until it is raised; raised and then
  swallowed (printed as "Exception ignored" from a ``__del__`` or callback), it is tried again;
  raised, it is not raised again while the command unwinds (later signals only repeat it).
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Any

RETRY_S = 0.02  # how soon a deferred signal is tried again


class _Held:
    """The signal not yet taken by the command, and whether it has been raised."""

    signum: int | None = None
    raised = False


_held = _Held()
_previous_hook: list[Any] = []  # sys.unraisablehook from before install_interrupt_handlers


def _unsafe_prefixes() -> tuple[str, ...]:
    """File names of the code a KeyboardInterrupt must not unwind: its locks are gevent's once
    gevent patched ``threading``. Looked up when a signal comes, not at import: the CLI
    installs its handlers first thing, and gevent's code can only be on the stack once gevent
    is imported."""
    stdlib = os.path.dirname(os.__file__)
    prefixes = ["<frozen importlib", "<frozen zipimport", os.path.join(stdlib, "threading.py"),
                os.path.join(stdlib, "logging") + os.sep]
    gevent_file = getattr(sys.modules.get("gevent"), "__file__", None)
    if isinstance(gevent_file, str):
        prefixes.append(os.path.dirname(gevent_file) + os.sep)
    return tuple(prefixes)


def install_interrupt_handlers() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt at the next safe point."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    signal.signal(signal.SIGALRM, _on_retry)
    if sys.unraisablehook is not _on_unraisable:
        _previous_hook[:] = [sys.unraisablehook]
        sys.unraisablehook = _on_unraisable


def take_held_signal() -> signal.Signals | None:
    """The signal not yet taken, which the caller now handles; stops the retries. The CLI calls
    it when the KeyboardInterrupt arrives, a run when it installs its own handlers."""
    if _held.signum is None:
        return None  # the timer is not ours to touch (pytest-timeout, say, may have armed it)
    _arm_retry(0)
    held = signal.Signals(_held.signum)
    _held.signum, _held.raised = None, False
    return held


def ignore_interrupts() -> None:
    """Ignore both signals (and drop a held one): for the exit once everything is written."""
    take_held_signal()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _held.signum is None:
        _held.signum = signum
    if not _held.raised:
        _deliver(frame)


def _on_retry(signum: int, frame: FrameType | None) -> None:
    if _held.signum is not None and not _held.raised:
        _deliver(frame)


def _deliver(frame: FrameType | None) -> None:
    main = _main_greenlet_if_elsewhere()
    if main is not None:
        # gevent's hub or another greenlet runs: the main greenlet waits at a switch, where
        # gevent's own Timeout is thrown too; the hub throws it there once this returns.
        _held.raised = True
        sys.modules["gevent"].get_hub().loop.run_callback(_throw_into, main)
    elif _is_safe(frame):
        _held.raised = True
        raise KeyboardInterrupt
    else:
        _arm_retry(RETRY_S)


def _arm_retry(seconds: float) -> None:
    """(Dis)arm the retry timer, only while SIGALRM is this module's to use (the CLI's)."""
    if signal.getsignal(signal.SIGALRM) is _on_retry:
        signal.setitimer(signal.ITIMER_REAL, seconds)


def _throw_into(main: Any) -> None:
    if not main.dead:
        main.throw(KeyboardInterrupt)


def _on_unraisable(unraisable: Any) -> None:
    """A KeyboardInterrupt lost in a ``__del__`` or callback: not printed, tried again."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _held.signum is not None:
        _held.raised = False
        _arm_retry(RETRY_S)
        return
    (_previous_hook[0] if _previous_hook else sys.__unraisablehook__)(unraisable)


def _is_safe(frame: FrameType | None) -> bool:
    unsafe = _unsafe_prefixes()
    while frame is not None:
        if frame.f_code.co_filename.startswith(unsafe):
            return False
        frame = frame.f_back
    return True


def _main_greenlet_if_elsewhere() -> Any:
    """The main greenlet when another greenlet (gevent's hub, a spawned one) runs, else None."""
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return None
    current = main = greenlet.getcurrent()
    while main.parent is not None:
        main = main.parent
    return None if main is current else main
