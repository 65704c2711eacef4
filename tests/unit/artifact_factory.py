"""Synthetic run directories for cost-engine tests (small, explicit, hand-checkable)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from harness.artifacts import (
    REQUEST_SCHEMA,
    REQUESTS,
    USAGE,
    USAGE_SCHEMA,
    Manifest,
    PhaseWindow,
    write_manifest,
)

GIB = 2**30


def request(
    start: float,
    endpoint: str = "/a",
    latency_ms: float = 10.0,
    phase: str = "steady",
    **fields: Any,
) -> dict[str, Any]:
    """One request row; unspecified telemetry stays null."""
    row: dict[str, Any] = {
        "start": start,
        "end": start + latency_ms / 1000.0,
        "latency_ms": latency_ms,
        "endpoint": endpoint,
        "method": "GET",
        "status": 200,
        "bytes_in": 0,
        "bytes_out": 0,
        "phase": phase,
    }
    row.update(fields)
    return row


def samples(
    service: str,
    times: Iterable[float],
    cpu: Iterable[float],
    rss: int = GIB,
    replica: str | None = None,
    role: str = "app",
    alive: bool = True,
    **fields: Any,
) -> list[dict[str, Any]]:
    """Usage samples of one replica: ``cpu`` is the cumulative CPU-seconds at each time."""
    return [
        {
            "ts": t,
            "service": service,
            "replica": replica or f"{service}-0",
            "role": role,
            "cpu_s": c,
            "rss_bytes": rss,
            "alive": alive,
            **fields,
        }
        for t, c in zip(times, cpu, strict=True)
    ]


def service(name: str, role: str = "app", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "role": role,
        "replicas": 1,
        "cpu": None,
        "memory": None,
        "billing": "instance",
        "entry": False,
    }
    base.update(fields)
    return base


def write_table(path: Path, rows: Sequence[dict[str, Any]], schema: pa.Schema) -> None:
    pq.write_table(pa.Table.from_pylist(list(rows), schema=schema), path)


def write_run(
    run_dir: Path,
    requests: Sequence[dict[str, Any]] | None = (),
    usage: Sequence[dict[str, Any]] | None = (),
    services: Sequence[dict[str, Any]] = (),
    phases: Sequence[tuple[str, float, float, bool]] = (("steady", 0.0, 10.0, True),),
    pricing: dict[str, Any] | None = None,
    price_book: str = "opencost-default",
    **manifest: Any,
) -> Path:
    """Write a run directory; ``None`` for requests/usage leaves that file out."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fields: dict[str, Any] = {
        "run_id": run_dir.name,
        "scenario_name": "synthetic",
        "scenario_path": "synthetic.yaml",
        "scenario": {"pricing": pricing or {}},
        "runtime": "local",
        "price_book": price_book,
        "status": "completed",
        "started_at": 0.0,
        "ended_at": max((p[2] for p in phases), default=0.0),
        "phases": [PhaseWindow(name=n, start=s, end=e, priced=p) for n, s, e, p in phases],
        "services": list(services),
    }
    fields.update(manifest)
    write_manifest(run_dir, Manifest(**fields))
    if requests is not None:
        write_table(run_dir / REQUESTS, requests, REQUEST_SCHEMA)
    if usage is not None:
        write_table(run_dir / USAGE, usage, USAGE_SCHEMA)
    return run_dir


def write_book(
    directory: Path,
    name: str = "test-book",
    prices: dict[str, tuple[float, str]] | None = None,
    **extra: Any,
) -> Path:
    """A price book YAML; ``prices`` maps key -> (unit price, unit). Returns its path."""
    source = {"url": "https://example.com/prices", "retrieved": "2026-01-01"}
    book: dict[str, Any] = {
        "name": name,
        "currency": "USD",
        "effective_date": "2026-01-01",
        "description": "test prices",
        "prices": {
            key: {"unit_price": price, "unit": unit, "source": source}
            for key, (price, unit) in (prices or {}).items()
        },
    }
    book.update(extra)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(book, sort_keys=False), encoding="utf-8")
    return path


# Round numbers: $0.001 per vCPU-second, $0.0001 per GiB-second, $0.1 per GB of egress.
SIMPLE_PRICES: dict[str, tuple[float, str]] = {
    "vcpu_hour": (3.6, "USD/vCPU-hour"),
    "memory_gib_hour": (0.36, "USD/GiB-hour"),
    "egress_gb": (0.1, "USD/GB"),
    "log_ingest_gb": (0.5, "USD/GiB"),
}
