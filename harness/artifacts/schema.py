"""The run-artifact contract: file names, Parquet schemas and the manifest model.

A run directory holds ``manifest.json``, ``requests.parquet``, ``usage.parquet``,
``faults.jsonl``, ``summary.json``, ``report.html`` and ``logs/``. Analysis reads these alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import ArtifactError

SCHEMA_VERSION = 1

MANIFEST = "manifest.json"
REQUESTS = "requests.parquet"
USAGE = "usage.parquet"
FAULTS = "faults.jsonl"
SUMMARY = "summary.json"
REPORT = "report.html"
LOGS = "logs"

# One row per request. Times are Unix seconds (float64); latency is exact (ms, float64).
REQUEST_SCHEMA = pa.schema(
    [
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("latency_ms", pa.float64()),
        ("endpoint", pa.string()),
        ("method", pa.string()),
        ("status", pa.int32()),  # 0 when no HTTP response (connection error, timeout)
        ("error", pa.string()),  # null when the request succeeded
        ("bytes_in", pa.int64()),  # request body bytes sent
        ("bytes_out", pa.int64()),  # response body bytes received
        ("replica", pa.string()),  # X-Served-By, null when absent
        ("tenant", pa.string()),
        ("phase", pa.string()),
        ("variant", pa.string()),
        ("cpu_ms", pa.float64()),  # Server-Timing fields; null when not reported
        ("db_reads", pa.int64()),
        ("db_writes", pa.int64()),
        ("cache_hits", pa.int64()),
        ("cache_misses", pa.int64()),
        ("external_calls", pa.int64()),
        ("external", pa.string()),  # "vendor=n;vendor2=m", null when none
        ("retries", pa.int64()),
        ("log_bytes", pa.int64()),
        ("telemetry_malformed", pa.bool_()),
        ("late_ms", pa.float64()),  # open model: actual start minus scheduled start
        # OpenTelemetry (docs/otel.md): the trace id the load generator sent (traceparent),
        # null without otel; the rest is filled from traces.parquet when the run is analysed.
        ("trace_id", pa.string()),
        ("cache_ops", pa.int64()),  # cache operations when hits/misses are not known
        ("server_ms", pa.float64()),  # the SERVER span's duration
        ("span_errors", pa.int64()),  # spans with status ERROR
        ("telemetry_source", pa.string()),  # server-timing | otel-spans | none (see rundata)
    ]
)

# One row per service replica per sample (1 Hz). cpu_s and io are cumulative since start.
USAGE_SCHEMA = pa.schema(
    [
        ("ts", pa.float64()),
        ("service", pa.string()),
        ("replica", pa.string()),
        ("role", pa.string()),  # "app" | "cache" | "database" | "external" | ...
        ("cpu_s", pa.float64()),
        ("rss_bytes", pa.int64()),
        ("io_read_bytes", pa.int64()),
        ("io_write_bytes", pa.int64()),
        ("net_tx_bytes", pa.int64()),  # null where the runtime cannot see it
        ("net_rx_bytes", pa.int64()),
        ("cpu_limit", pa.float64()),  # provisioned vCPU (request), null if unset
        ("mem_limit_bytes", pa.int64()),  # provisioned memory, null if unset
        ("alive", pa.bool_()),
        ("phase", pa.string()),
    ]
)

Status = Literal["running", "completed", "failed", "aborted", "interrupted"]


class PhaseWindow(BaseModel):
    """A named span of the run; requests and samples inside it carry its name."""

    model_config = ConfigDict(extra="forbid")
    name: str
    start: float
    end: float | None = None
    priced: bool = True  # warm-up is recorded but not priced


class Manifest(BaseModel):
    """``manifest.json``: what ran, with what, and how it ended."""

    model_config = ConfigDict(extra="allow")
    schema_version: int = SCHEMA_VERSION
    run_id: str
    scenario_name: str
    scenario_path: str
    scenario: dict[str, Any]
    runtime: str
    price_book: str
    status: Status = "running"
    error: str | None = None
    started_at: float
    ended_at: float | None = None
    versions: dict[str, str] = {}
    git_sha: str | None = None
    phases: list[PhaseWindow] = []
    traffic: dict[str, Any] = {}
    services: list[dict[str, Any]] = []
    crashes: list[dict[str, Any]] = []  # replicas that died on their own mid-run


def write_manifest(run_dir: Path, manifest: Manifest) -> None:
    """Write atomically so a crash never leaves a half-written manifest."""
    tmp = run_dir / (MANIFEST + ".tmp")
    tmp.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(run_dir / MANIFEST)


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON artifact holding one object; ArtifactError when unreadable, cut or not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable or truncated JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    return data


def read_manifest(run_dir: Path) -> Manifest:
    """Read and check a run's manifest; raise :class:`ArtifactError` naming the problem."""
    path = run_dir / MANIFEST
    if not run_dir.is_dir():
        raise ArtifactError(f"{run_dir}: not a run directory (it does not exist)")
    if not path.is_file():
        raise ArtifactError(f"{path}: missing; {run_dir} is not a run directory")
    raw = read_json_object(path)
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ArtifactError(
            f"{path}: schema_version {version!r} is not {SCHEMA_VERSION}; "
            "this run was written by another version of the harness"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ArtifactError(f"{path}: not a harness manifest ({exc.errors()[0]['msg']})") from exc
