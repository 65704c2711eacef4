"""A service the harness did not instrument: known CPU per endpoint, no telemetry header."""
