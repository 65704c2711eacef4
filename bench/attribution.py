"""Attribution accuracy: the harness's per-call CPU, bytes and DB operations vs designed truth.

    .venv/bin/python bench/attribution.py [--quick] [--runs 5] [--runtime local|docker]

The calibrated target (``targets/calibrated``) serves endpoints whose cost is exact by
construction: each call spins until its handler thread used ``cpu_ms`` of CPU (its PostgreSQL
client work included), answers exactly ``bytes`` bytes and runs ``reads`` primary-key SELECTs
and ``writes`` INSERTs on a real PostgreSQL (the scenario's ``kind: postgres`` service). Each
run is a real ``harness run`` (open model, mixed endpoints); then, from the run's artifacts:

* CPU per call: the ledger's attributed vCPU-seconds per endpoint / calls, vs ``cpu_ms``;
* bytes per call: the ledger's egress GB per endpoint / calls, vs ``bytes``;
* operations: the ledger's DB read/write units per endpoint / calls, vs ``reads``/``writes``,
  and every recorded request's counters summed vs PostgreSQL's own statistics
  (``pg_stat_user_tables``, read by the target at startup and at exit);
* reconciliation: Σ ``EffectiveCost`` of ``ledger.parquet`` and ``summary.json``'s total vs a
  metered total computed here from ``usage.parquet`` (CPU-seconds and RSS GiB-seconds over
  the priced window), the response bytes and the PostgreSQL-checked operation counts.

Goals: CPU within ±5 %, bytes within ±1 %, operations exact, reconciliation error <= 1 %.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from attribution_checks import ENDPOINTS, check_run, summarize
from benchlib import HARNESS, stop_on_sigterm, write_section

SCENARIO = """name: attribution
target:
  runtime: {runtime}
  entry: api
  services:
    db:
      kind: postgres
      billing: serverless
    api:
      command: "{{python}} -m targets.calibrated"
      depends_on: [db]
      cpu: 1
      memory: 512Mi
      billing: usage
      startup_timeout: 60s
      env:
        CALIBRATED_DB_URL: "{{services.db.url}}"{stats_env}
traffic:
  model: open
  rate: {rate}
  max_in_flight: 32
  warmup: {warmup}s
  duration: {duration}s
requests:
{requests}
pricing:
  price_book: aws-fargate-us-east-1
profiling:
  enabled: {profiling}
"""


def scenario_text(runtime: str, rate: int, warmup: int, duration: int, profiling: bool) -> str:
    """The scenario. The target writes PostgreSQL's counts into the run directory at exit (on
    the docker runtime ``{run_dir}`` is the run directory mounted into the container)."""
    lines = []
    for name, truth in ENDPOINTS.items():
        query = "&".join(f"{k}={truth[k]:g}" for k in ("cpu_ms", "bytes", "reads", "writes"))
        lines += [f"  - name: GET {name}", f"    path: {name}?{query}",
                  f"    weight: {truth['weight']:g}"]  # fmt: skip
    stats_env = '\n        CALIBRATED_STATS_FILE: "{run_dir}/calibrated-stats.json"'
    return SCENARIO.format(runtime=runtime, stats_env=stats_env, rate=rate, warmup=warmup,
                           duration=duration, requests="\n".join(lines),
                           profiling=str(profiling).lower())  # fmt: skip


def profiling_available() -> bool:
    try:
        import pyroscope  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def run_once(tmp: Path, index: int, runtime: str, rate: int, warmup: int, duration: int
             ) -> dict[str, Any]:
    """One ``harness run`` of the calibrated scenario, checked; raises SystemExit on failure."""
    run_dir = tmp / f"run-{index}"
    scenario = tmp / f"attribution-{index}.yaml"
    # Profiles reach the embedded receiver on the local runtime only (docs/docker.md).
    profiling = runtime == "local" and profiling_available()
    scenario.write_text(scenario_text(runtime, rate, warmup, duration, profiling),
                        encoding="utf-8")  # fmt: skip
    done = subprocess.run([HARNESS, "run", str(scenario), "--output", str(run_dir)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"harness run failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                         f"{done.stderr[-3000:]}")  # fmt: skip
    return check_run(run_dir)


def _median_table(results: list[dict[str, Any]]) -> pd.DataFrame:
    frames = [r["endpoints"].assign(run=i) for i, r in enumerate(results)]
    return pd.concat(frames).groupby("endpoint", sort=False).median(numeric_only=True)


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--runtime", choices=["local", "docker"], default="local")
    parser.add_argument("--rate", type=int, default=25)
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--keep", type=Path, help="keep run directories here")
    args = parser.parse_args()
    runs, duration, warmup = (1, 8, 2) if args.quick else (args.runs, args.duration, 3)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-attribution-") as name:
        tmp = args.keep or Path(name)
        tmp.mkdir(parents=True, exist_ok=True)
        for index in range(runs):
            result = run_once(tmp, index, args.runtime, args.rate, warmup, duration)
            results.append(result)
            print(f"run {index + 1}/{runs}: " + json.dumps(result["totals"], default=float),
                  flush=True)  # fmt: skip
    text = summarize(results, _median_table(results), args.runtime, args.rate, warmup, duration)
    print("\n" + text)
    section = "attribution" if args.runtime == "local" else f"attribution-{args.runtime}"
    write_section(section, f"2. Attribution accuracy ({args.runtime} runtime)", text)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
