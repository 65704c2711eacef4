"""``python -m targets.payments``: the paid downstream stand-in.

Settings from ``PAYMENTS_LATENCY_MS`` (20), ``PAYMENTS_JITTER_MS`` (5), ``PAYMENTS_FAIL_RATE``
(0..1, 0), ``PAYMENTS_MODE`` (ok | fail | slow | timeout), ``PAYMENTS_SLOW_MS`` (1000),
``PAYMENTS_HOLD_MS`` (3000), ``PAYMENTS_SEED`` (fixes the random draws), ``PAYMENTS_LOG_LEVEL``
(WARNING), ``PAYMENTS_THREADS`` (64: held requests must not starve ``/control``),
``PAYMENTS_STATS_FILE`` (after a clean stop, its ``/stats`` counts are written there as JSON).
Exit status: 0 after SIGTERM / SIGINT, 2 for an invalid setting (one line on stderr), 3 when
the port cannot be bound.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from harness.errors import TargetError
from harness.instrument import LogBytesHandler, WSGIMiddleware, serve_wsgi
from targets.payments.app import create_app
from targets.payments.behaviour import Behaviour, BehaviourError, Settings, parse_settings

LOG_LEVELS = ("WARNING", "INFO", "DEBUG")
DEFAULT_THREADS = 64


def main() -> int:
    try:
        settings = parse_settings(Settings(), os.environ, env=True)
        seed = _optional_int("PAYMENTS_SEED", 0, 2**63)
        threads = _optional_int("PAYMENTS_THREADS", 1, 1024) or DEFAULT_THREADS
        level = os.environ.get("PAYMENTS_LOG_LEVEL", "WARNING").upper()
        if level not in LOG_LEVELS:
            raise BehaviourError(
                f"invalid PAYMENTS_LOG_LEVEL={level!r}; allowed values: {', '.join(LOG_LEVELS)}"
            )
    except BehaviourError as exc:
        print(f"payments: {exc}", file=sys.stderr)
        return 2
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger().setLevel(level)
    for handler in (logging.StreamHandler(sys.stderr), LogBytesHandler()):
        handler.setFormatter(formatter)
        logging.getLogger().addHandler(handler)
    behaviour = Behaviour(settings, seed)
    try:
        serve_wsgi(WSGIMiddleware(create_app(behaviour)), threads=threads)
    except TargetError as exc:
        print(f"payments: {exc}", file=sys.stderr)
        return 3
    if stats_file := os.environ.get("PAYMENTS_STATS_FILE"):  # its own counts, after a stop
        Path(stats_file).write_text(json.dumps(behaviour.counts()), encoding="utf-8")
    return 0


def _optional_int(name: str, low: int, high: int) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not (raw.isdigit() and low <= int(raw) <= high):
        raise BehaviourError(f"invalid {name}={raw!r}; expected an integer from {low} to {high}")
    return int(raw)


if __name__ == "__main__":
    sys.exit(main())
