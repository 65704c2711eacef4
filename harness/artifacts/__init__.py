"""The run's artifacts: the contract between a run (which writes them) and analysis (which
reads them from disk alone).

Takes nothing of the stages around it: ``schema`` names the files of ``reports/<run-id>/``
and their columns (``manifest.json``, ``requests.parquet``, ``usage.parquet``,
``faults.jsonl``, ...); ``parts`` writes a Parquet file incrementally as bounded parts and
compacts them (also after a crash); ``telemetry`` reads the ``Server-Timing`` header a target
sends into record fields; ``rundata`` loads a run directory into typed frames
(:class:`RunData`), or raises :class:`~harness.errors.ArtifactError` naming the file.
"""

from harness.artifacts.rundata import RunData, load_run
from harness.artifacts.schema import (
    FAULTS,
    LOGS,
    MANIFEST,
    REPORT,
    REQUEST_SCHEMA,
    REQUESTS,
    SCHEMA_VERSION,
    SUMMARY,
    USAGE,
    USAGE_SCHEMA,
    Manifest,
    PhaseWindow,
    Status,
    read_manifest,
    write_manifest,
)

__all__ = [
    "FAULTS",
    "LOGS",
    "MANIFEST",
    "REPORT",
    "REQUESTS",
    "REQUEST_SCHEMA",
    "SCHEMA_VERSION",
    "SUMMARY",
    "USAGE",
    "USAGE_SCHEMA",
    "Manifest",
    "PhaseWindow",
    "RunData",
    "Status",
    "load_run",
    "read_manifest",
    "write_manifest",
]
