"""The standard ``OTEL_*`` variables that point an OpenTelemetry SDK at the harness."""

from __future__ import annotations

__all__ = ["otel_env"]


def otel_env(endpoint: str, service: str, schedule_delay_s: float) -> dict[str, str]:
    """What a process service is given (under its own ``env``: a variable it sets wins).

    Traces only, over OTLP/HTTP protobuf, every span sampled when the harness's traceparent
    says so (it always does), exported in batches every ``schedule_delay_s`` seconds."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": service,
        "OTEL_PROPAGATORS": "tracecontext",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_BSP_SCHEDULE_DELAY": str(max(int(schedule_delay_s * 1000), 1)),
    }
