"""harness.signals: a signal raises KeyboardInterrupt at once, except while the import system
(or a lock's code) runs, where it is held and raised by the retry at the first frame outside;
raised once, it is not raised again while the command unwinds, unless it was swallowed."""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import gevent
import pytest

from harness import signals

IMPORTING = "<frozen importlib._bootstrap>"


REAL_ARM = signals._arm_retry
ARMED: list[float] = []  # what the code asked of the retry timer, last last


@pytest.fixture(autouse=True)
def _restore(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The retry timer is recorded, not armed: the tests call the retry themselves, so it never
    fires at a moment they did not choose (and pytest-timeout's alarm is left alone)."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    hook = sys.unraisablehook
    ARMED.clear()
    monkeypatch.setattr(signals, "_arm_retry", ARMED.append)
    yield
    signals.take_held_signal()
    sys.unraisablehook = hook
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _frame_inside(filename: str) -> FrameType:
    """A real frame whose caller's code claims to be ``filename``."""
    code = compile("frame = grab()", filename, "exec")
    scope: dict[str, object] = {"grab": lambda: sys._getframe(1)}
    exec(code, scope)
    frame = scope["frame"]
    assert isinstance(frame, FrameType)
    return frame


def _retry_armed() -> bool:
    return bool(ARMED) and ARMED[-1] > 0


def test_a_signal_outside_an_import_raises_at_once_and_only_once() -> None:
    signals.install_interrupt_handlers()
    with pytest.raises(KeyboardInterrupt):
        signals._on_signal(signal.SIGTERM, sys._getframe())
    signals._on_signal(signal.SIGINT, sys._getframe())  # while unwinding: only repeats it
    signals._on_retry(signal.SIGALRM, sys._getframe())
    assert signals.take_held_signal() is signal.SIGTERM
    assert signals.take_held_signal() is None


@pytest.mark.parametrize("where", [IMPORTING, threading.__file__, logging.__file__,
                                   str(Path(gevent.__file__).with_name("thread.py"))])
def test_a_signal_inside_an_import_or_a_lock_is_held_then_raised_by_the_retry(where: str) -> None:
    signals.install_interrupt_handlers()
    signals._on_signal(signal.SIGINT, _frame_inside(where))
    assert _retry_armed()
    signals._on_retry(signal.SIGALRM, _frame_inside(IMPORTING))  # still importing: held again
    with pytest.raises(KeyboardInterrupt):
        signals._on_retry(signal.SIGALRM, sys._getframe())
    assert signals.take_held_signal() is signal.SIGINT


def test_a_stray_retry_raises_nothing() -> None:
    signals._on_retry(signal.SIGALRM, sys._getframe())


def test_an_interrupt_swallowed_by_a_finalizer_is_raised_again() -> None:
    class Finalized:
        def __del__(self) -> None:
            signals._on_signal(signal.SIGTERM, sys._getframe())

    signals.install_interrupt_handlers()
    Finalized()  # the KeyboardInterrupt goes to sys.unraisablehook, not to this frame
    gc.collect()
    assert _retry_armed()
    with pytest.raises(KeyboardInterrupt):
        signals._on_retry(signal.SIGALRM, sys._getframe())


def test_ignoring_drops_a_held_signal_and_disarms_the_retry() -> None:
    signals.install_interrupt_handlers()
    signals._on_signal(signal.SIGTERM, _frame_inside(IMPORTING))
    signals.ignore_interrupts()
    assert signals.take_held_signal() is None
    assert not _retry_armed()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN


def test_a_run_takes_over_a_signal_held_while_the_command_started() -> None:
    from harness.run.interrupt import StopFlag

    signals.install_interrupt_handlers()
    signals._on_signal(signal.SIGTERM, _frame_inside(IMPORTING))
    flag = StopFlag()
    flag.install()
    assert flag.signal_name == "SIGTERM"
    assert signals.take_held_signal() is None
    assert not _retry_armed()


def test_the_retry_timer_is_used_only_while_sigalrm_is_the_cli_s() -> None:
    previous = signal.setitimer(signal.ITIMER_REAL, 0)  # pytest-timeout's alarm, put back
    try:
        signal.signal(signal.SIGALRM, signal.SIG_IGN)  # someone else's SIGALRM
        REAL_ARM(5.0)
        assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
        signal.signal(signal.SIGALRM, signals._on_retry)
        REAL_ARM(5.0)
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 4
        REAL_ARM(0)
        assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, *previous)


def test_taking_nothing_leaves_the_timer_alone() -> None:
    assert signals.take_held_signal() is None
    assert ARMED == []
