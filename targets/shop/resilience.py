"""Retry policies for the payments call: the ``retries`` variant family.

* ``none`` — one attempt.
* ``naive`` — up to 5 attempts, back to back: under failure it multiplies the paid calls.
* ``backoff_breaker`` — up to 3 attempts with exponential backoff and full jitter, behind a
  process-wide circuit breaker that opens after N consecutive failures and then fails fast
  (no call at all) for a cool-down, before letting one trial call through (half-open).

Each retry counts ``counters.retry()``; the attempts themselves are counted by the client.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from harness.instrument import counters
from targets.shop.payments_client import PaymentError, PaymentUnavailable
from targets.shop.variants import Retries

T = TypeVar("T")

NAIVE_ATTEMPTS = 5
BACKOFF_ATTEMPTS = 3
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 1.0


class CircuitOpen(PaymentError):
    """The breaker is open: the call was not attempted."""


class RetryPolicy(Protocol):
    def call(self, attempt: Callable[[], T]) -> T: ...


class Attempts:
    """Up to ``attempts`` tries back to back (``none`` = 1, ``naive`` = 5)."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts

    def call(self, attempt: Callable[[], T]) -> T:
        for _ in range(self.attempts - 1):
            try:
                return attempt()
            except PaymentUnavailable:
                counters.retry()
        return attempt()


class CircuitBreaker:
    """Thread-safe consecutive-failure breaker: closed → open → half-open → closed."""

    def __init__(
        self, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    def allow(self) -> bool:
        """Whether a call may go out now (in half-open state, only one trial at a time)."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._trial_in_flight or self._clock() - self._opened_at < self.cooldown_s:
                return False
            self._trial_in_flight = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._trial_in_flight = 0, None, False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._trial_in_flight or self._failures >= self.threshold:
                self._opened_at = self._clock()
            self._trial_in_flight = False

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._opened_at is not None


class BackoffBreaker:
    """Exponential backoff with full jitter, every attempt gated by a :class:`CircuitBreaker`."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.breaker = breaker
        self._sleep = sleep
        self._rng = rng or random.Random()

    def call(self, attempt: Callable[[], T]) -> T:
        for n in range(1, BACKOFF_ATTEMPTS):
            try:
                return self._gated(attempt, is_retry=n > 1)
            except PaymentUnavailable:
                if self.breaker.is_open:
                    raise  # the breaker just opened: waiting to be refused helps no one
                self._sleep(self._rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**n)))
        return self._gated(attempt, is_retry=BACKOFF_ATTEMPTS > 1)

    def _gated(self, attempt: Callable[[], T], *, is_retry: bool) -> T:
        if not self.breaker.allow():
            raise CircuitOpen("payments circuit breaker is open")
        if is_retry:
            counters.retry()
        try:
            result = attempt()
        except PaymentUnavailable:
            self.breaker.record_failure()
            raise
        except PaymentError:
            self.breaker.record_success()  # it answered: the downstream is up
            raise
        self.breaker.record_success()
        return result


def make_policy(retries: Retries, threshold: int, cooldown_s: float) -> RetryPolicy:
    if retries == "naive":
        return Attempts(NAIVE_ATTEMPTS)
    if retries == "backoff_breaker":
        return BackoffBreaker(CircuitBreaker(threshold, cooldown_s))
    return Attempts(1)
