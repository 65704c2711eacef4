"""``python -m targets.shop.otel``: the shop under real OpenTelemetry auto-instrumentation.

The same as ``opentelemetry-instrument python -m targets.shop`` with ``SHOP_INSTRUMENT=off``:
the plain Flask app (no ``harness.instrument`` middleware, no ``Server-Timing`` header) whose
Flask, psycopg, redis and requests calls the OpenTelemetry instrumentations trace. Exporting
is configured by the standard ``OTEL_*`` variables (the harness sets them, see docs/otel.md).
Needs ``opentelemetry-distro``, ``opentelemetry-exporter-otlp-proto-http`` and the
``opentelemetry-instrumentation-{flask,psycopg,redis,requests}`` packages.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    from opentelemetry.instrumentation.auto_instrumentation import run

    os.environ["SHOP_INSTRUMENT"] = "off"
    sys.argv = ["opentelemetry-instrument", sys.executable, "-m", "targets.shop"]
    run()  # execs the shop with the instrumentation's sitecustomize on its path


if __name__ == "__main__":
    main()
