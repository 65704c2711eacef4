"""Synthetic run windows with known cost per call, latency and noise (for gate/compare tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from artifact_factory import SIMPLE_PRICES, request, samples, service, write_book, write_run

from harness.compare.windows import N_BINS, RunWindows, latency_bins

PHASES = (("warmup", 0.0, 2.0, False), ("steady", 2.0, 12.5, True))

CATEGORIES = ("compute", "egress", "unattributed")
SHARES = np.array([0.7, 0.2, 0.1])  # how each endpoint's cost splits over CATEGORIES


def windows(
    run_id: str,
    endpoints: dict[str, tuple[float, float]],
    n: int = 30,
    rate: float = 20.0,
    noise: float = 0.05,
    seed: int = 0,
    errors: float = 0.0,
) -> RunWindows:
    """``endpoints`` maps name -> (cost per call, median latency ms). Each 1-s window gets
    Poisson(rate) calls per endpoint, cost = calls x cost per call x (1 + noise x N(0, 1)),
    latencies lognormal around the median (sigma 0.3), Binomial(calls, errors) errors."""
    rng = np.random.default_rng(seed)
    names = tuple(endpoints)
    calls = rng.poisson(rate, size=(n, len(names))).astype(float)
    cost = np.zeros((n, len(names), len(CATEGORIES)))
    latency = np.zeros((n, len(names), N_BINS))
    for e, (per_call, median) in enumerate(endpoints.values()):
        factor = 1.0 + noise * rng.standard_normal(n)
        cost[:, e, :] = (calls[:, e] * per_call * factor)[:, None] * SHARES
        for w in range(n):
            sample = median * np.exp(0.3 * rng.standard_normal(int(calls[w, e])))
            np.add.at(latency[w, e], latency_bins(sample), 1.0)
    return RunWindows(
        run_id=run_id,
        endpoints=names,
        categories=CATEGORIES,
        seconds=np.ones(n),
        calls=calls,
        errors=rng.binomial(calls.astype(int), errors).astype(float),
        cost=cost,
        latency=latency,
    )


def sample_run(
    tmp_path: Path, name: str = "run", cpu_ms: float = 20.0,
    gate: dict[str, Any] | None = None, **manifest: Any,
) -> tuple[Path, str]:  # fmt: skip
    """A 10.5-s priced run dir: 4 calls/s of /a (``cpu_ms`` each) and 2/s of /b (1 ms of CPU,
    10 kB out, every 7th an error); returns (run dir, price book path)."""
    reqs = [request(2.0 + i / 4, "/a", 10.0 + i % 7, cpu_ms=cpu_ms) for i in range(42)]
    reqs += [request(2.1 + i / 2, "/b", 3.0, cpu_ms=1.0, bytes_out=10_000,
                     error="HTTP 500" if i % 7 == 0 else None) for i in range(21)]  # fmt: skip
    reqs.append(request(1.0, "/a", 999.0, phase="warmup"))
    times = [float(t) for t in range(14)]
    usage = samples("api", times, [0.2 * t for t in times])
    scenario = {"pricing": {}, "gate": gate or {}}
    run_dir = write_run(tmp_path / name, reqs, usage, [service("api", entry=True)], PHASES,
                        scenario=scenario, **manifest)  # fmt: skip
    return run_dir, str(write_book(tmp_path / "books", prices=SIMPLE_PRICES))
