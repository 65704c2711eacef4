"""OpenTelemetry in: per-request operations from the spans of standard instrumentation.

* :class:`~harness.otel.receiver.OtlpReceiver` — the embedded OTLP/HTTP receiver (its own
  process); the targets export to it; it writes ``RUN_DIR/traces.parquet`` (one row per
  trace) and ``RUN_DIR/otel.json``.
* :func:`otel_env` — the standard ``OTEL_*`` variables a process service is given.
* :func:`fill_from_traces`, :func:`otel_accounting` — the join of request records with their
  traces (by trace id) and the lost / late / foreign / rejected accounting.

See ``docs/otel.md``.
"""

from harness.otel.decode import InvalidOtlp
from harness.otel.traces import TRACES, read_traces

# OtlpReceiver is imported from harness.otel.receiver (not here: ``python -m`` runs that
# module, which must not be imported before it runs).
__all__ = ["TRACES", "InvalidOtlp", "read_traces"]
