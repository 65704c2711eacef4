"""Profile-based attribution: per-endpoint CPU from ``RUN_DIR/profiles`` (Pyroscope samples
tagged with the endpoint) as a request weight, and its cross-check against Server-Timing CPU.

Profiles give each endpoint's *share* of a service's CPU (their absolute seconds drift when the
machine is overloaded), so the weight of a request is its endpoint's profiled CPU per call;
the metered CPU is then split by those weights like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from harness.profiling import cpu_by_endpoint
from harness.profiling.pprof import UNTAGGED

PROFILE_WEIGHT = "profile_ms"


def has_profiles(profiles_dir: Path) -> bool:
    return (profiles_dir / "index.json").is_file()


def add_profile_weights(requests: pd.DataFrame, profiles_dir: Path) -> pd.DataFrame:
    """``requests`` (aggregated rows with ``service``, ``endpoint``, ``calls``) plus a
    ``profile_ms`` column: calls × the endpoint's profiled CPU ms per call (0 without data)."""
    weights = pd.Series(0.0, index=requests.index)
    if has_profiles(profiles_dir) and len(requests):
        calls = requests.groupby(["service", "endpoint"], observed=True)["calls"].sum()
        per_call: dict[tuple[str, str], float] = {}
        cpu_of: dict[str, dict[str, float]] = {}
        for key, n in calls.items():
            service, endpoint = (str(part) for part in key)  # type: ignore[attr-defined]
            cpu = cpu_of.setdefault(service, cpu_by_endpoint(profiles_dir, service=service))
            if n > 0 and endpoint in cpu:
                per_call[(service, endpoint)] = cpu[endpoint] * 1000.0 / float(n)
        keys = list(zip(requests["service"].astype(str), requests["endpoint"].astype(str),
                        strict=True))
        weights = requests["calls"] * pd.Series([per_call.get(k, 0.0) for k in keys],
                                                index=requests.index)
    return requests.assign(**{PROFILE_WEIGHT: weights.to_numpy(float)})


def profile_check(groups: pd.DataFrame, profiles_dir: Path) -> dict[str, Any] | None:
    """Per service: each endpoint's CPU share from profiles vs from Server-Timing, the largest
    difference in percentage points, and the untagged share of profiled CPU."""
    if not has_profiles(profiles_dir):
        return None
    out: dict[str, Any] = {}
    for service in groups["service"].astype(str).unique():
        cpu = cpu_by_endpoint(profiles_dir, service=service)
        total = sum(cpu.values())
        if total <= 0:
            continue
        tagged = {k: v for k, v in cpu.items() if k != UNTAGGED}
        mine = groups[groups["service"].astype(str) == service]
        st = mine.groupby("endpoint", observed=True)["cpu_ms"].sum()
        st_total = float(st.sum())
        endpoints = {}
        for endpoint in sorted(set(tagged) | {str(e) for e in st.index if st[e] > 0}):
            p_share = tagged.get(endpoint, 0.0) / sum(tagged.values()) if tagged else None
            s_share = float(st.get(endpoint, 0.0)) / st_total if st_total > 0 else None
            endpoints[endpoint] = {"profile_cpu_share": p_share, "server_timing_cpu_share": s_share}
        diffs = [abs(e["profile_cpu_share"] - e["server_timing_cpu_share"]) * 100
                 for e in endpoints.values()
                 if e["profile_cpu_share"] is not None and e["server_timing_cpu_share"] is not None]
        out[service] = {"endpoints": endpoints, "untagged_share": cpu.get(UNTAGGED, 0.0) / total,
                        "max_difference_points": max(diffs) if diffs else None,
                        "profiled_cpu_s": total}
    return out or None
