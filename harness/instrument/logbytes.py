"""Count the log output a request produces (the "log bytes" of its cost)."""

from __future__ import annotations

import logging

from harness.instrument.counters import _current

__all__ = ["LogBytesHandler"]


class LogBytesHandler(logging.Handler):
    """Adds the formatted size of every record emitted during a request to its counters.

    It writes nothing itself. Attach it next to the real handlers (usually on the root
    logger) and give it the same formatter as the handler that ships the logs, so the
    count matches what is stored: ``handler.setFormatter(real_handler.formatter)``.
    Each record counts its UTF-8 size plus one byte for the newline. Records emitted
    outside a request are neither formatted nor counted.
    """

    def emit(self, record: logging.LogRecord) -> None:
        counters = _current.get()
        if counters is None:
            return
        try:
            text = self.format(record)
        except Exception:  # the logging contract: a broken record must not break the app
            self.handleError(record)
            return
        size = len(text) if text.isascii() else len(text.encode(errors="replace"))
        counters.log_bytes += size + 1
