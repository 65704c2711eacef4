"""A fixed request rate for ``bench/target_overhead.py``: each user calls once a second
(``constant_throughput(1)``), so ``-u N`` asks N requests/s. Paths come from ``BENCH_PATHS``
(``"/cheap:5,/cpu?ms=20:2"``: path and integer weight) in a fixed repeating sequence, so every
target offered the same load gets the same mix in every window, not a random draw.
"""

from __future__ import annotations

import itertools
import os

from locust import FastHttpUser, constant_throughput, task


def sequence(spec: str) -> list[str]:
    """Paths by weight, interleaved: ``"/a:2,/b:1"`` -> ``["/a", "/b", "/a"]``."""
    weighted = []
    for item in spec.split(","):
        path, _, weight = item.rpartition(":")
        weighted.append((path, int(weight)))
    out: list[str] = []
    for turn in range(max(w for _, w in weighted)):
        out += [path for path, w in weighted if turn < w]
    return out


PATHS = itertools.cycle(sequence(os.environ.get("BENCH_PATHS") or "/cheap:1"))


class RateUser(FastHttpUser):
    wait_time = constant_throughput(1)

    @task
    def call(self) -> None:
        path = next(PATHS)
        self.client.get(path, name=path.split("?")[0])
