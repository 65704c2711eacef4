"""A fixed request rate for ``bench/target_overhead.py``: each user calls once a second
(``constant_throughput(1)``), so ``-u N`` asks N requests/s; paths are drawn by weight from
``BENCH_PATHS`` (``"/cheap:5,/cpu?ms=20:2"``).
"""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, constant_throughput, task


def _paths() -> tuple[list[str], list[float]]:
    paths, weights = [], []
    for item in (os.environ.get("BENCH_PATHS") or "/cheap:1").split(","):
        path, _, weight = item.rpartition(":")
        paths.append(path)
        weights.append(float(weight))
    return paths, weights


PATHS, WEIGHTS = _paths()


class RateUser(FastHttpUser):
    wait_time = constant_throughput(1)

    @task
    def call(self) -> None:
        path = random.choices(PATHS, WEIGHTS)[0]
        self.client.get(path, name=path.split("?")[0])
