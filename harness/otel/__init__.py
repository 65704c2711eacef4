"""OpenTelemetry in, during a run: the scenario's ``otel`` block in, ``traces.parquet`` out.

* :class:`~harness.otel.receiver.OtlpReceiver` — the embedded OTLP/HTTP receiver (its own
  process); the targets export to it; it aggregates spans per trace (``traces``) and writes
  ``RUN_DIR/traces.parquet`` (one row per trace; the format is
  ``harness.artifacts.traces``) and ``RUN_DIR/otel.json``.
* :func:`~harness.otel.env.otel_env` — the standard ``OTEL_*`` variables a process service is
  given.

The join of request records with their traces (by trace id) is analysis of artifacts:
``harness.artifacts.join``; the lost / late / foreign / rejected accounting in the summary is
``harness.report.telemetry``. See ``docs/otel.md``.
"""

from harness.otel.decode import InvalidOtlp

# OtlpReceiver is imported from harness.otel.receiver (not here: ``python -m`` runs that
# module, which must not be imported before it runs).
__all__ = ["InvalidOtlp"]
