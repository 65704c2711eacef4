"""A real run's artifacts keep their schema: column names and types of every Parquet file, the
keys of manifest.json and summary.json (recursively, lists by their first item), and the
ledger's columns, compared with ``tests/fixtures/artifact_schema.json``.

The snapshot was written before the code moved into one package per stage (issue 17); a
change to any artifact's shape fails here. ``HARNESS_WRITE_SCHEMA=1`` rewrites the snapshot
(do that only for an intended schema change, and say so in the commit)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tests.conftest import ROOT, run_cli

SNAPSHOT = ROOT / "tests" / "fixtures" / "artifact_schema.json"
SCENARIO = """
name: schema
target:
  services:
    api:
      command: "{python} -m targets.sample"
      cpu: 1
      memory: 256Mi
traffic: {model: open, rate: 30, warmup: 1s, duration: 4s}
requests:
  - {name: cpu, path: "/cpu?ms=2"}
  - {name: cheap, path: /cheap, weight: 2}
"""


def _shape(value: Any) -> Any:
    """Keys of mappings (recursively); a list by its first item; other values by kind."""
    if isinstance(value, dict):
        return {str(k): _shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return "value"


def schema_of(run_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("requests.parquet", "usage.parquet", "ledger.parquet"):
        schema = pq.read_schema(run_dir / name)
        out[name] = {field.name: str(field.type) for field in schema}
    for name in ("manifest.json", "summary.json"):
        out[name] = _shape(json.loads((run_dir / name).read_text()))
    out["ledger.csv"] = (run_dir / "ledger.csv").read_text().splitlines()[0].split(",")
    out["files"] = sorted(p.name for p in run_dir.iterdir() if p.is_file())
    return out


def _variable(schema: dict[str, Any]) -> dict[str, Any]:
    """Parts of the shape that depend on the run, not the code: names of endpoints, phases,
    services and price keys used as mapping keys."""
    summary = schema["summary.json"]
    for path in (("billing_models", "models"), ("attribution",), ("categories",)):
        node = summary
        for key in path[:-1]:
            node = node.get(key, {})
        if path[-1] in node:
            node[path[-1]] = sorted(node[path[-1]])
    for phase in summary.get("phases", []):
        phase["endpoints"] = "mapping"
    return schema


def test_a_runs_artifacts_keep_their_schema(scenario_file: Callable[[str], Path],
                                            run_dir: Path) -> None:
    done = run_cli("run", scenario_file(SCENARIO), "--output", run_dir)
    assert done.returncode == 0, done.stderr
    actual = _variable(schema_of(run_dir))
    if os.environ.get("HARNESS_WRITE_SCHEMA") == "1":
        SNAPSHOT.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    for name in expected:
        assert actual[name] == expected[name], name
    assert set(actual) == set(expected)
