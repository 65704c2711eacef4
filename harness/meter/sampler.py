"""Samples a Meter at a fixed interval in a greenlet and writes ``usage.parquet`` parts."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gevent

from harness.artifacts import USAGE_SCHEMA
from harness.artifacts.parts import PartWriter
from harness.meter.base import Meter, UsageSample
from harness.traffic.recorder import PhaseClock

FLUSH_S = 5.0  # seconds of samples per Parquet part


class Sampler:
    def __init__(self, meter: Meter, clock: PhaseClock, path: Path, interval: float = 1.0) -> None:
        self.meter = meter
        self.clock = clock
        self.interval = interval
        self.writer = PartWriter(path, USAGE_SCHEMA)
        self.latest: list[UsageSample] = []
        self.first: list[UsageSample] = []
        self._rows: list[dict[str, Any]] = []
        self._greenlet: gevent.Greenlet[Any, Any] | None = None

    def start(self) -> None:
        self.sample_now()
        self.first = self.latest
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        flushed = time.monotonic()
        while True:
            gevent.sleep(self.interval)  # read each time: a run may sample faster mid-way
            self.sample_now()
            if time.monotonic() - flushed >= FLUSH_S:
                self.flush()
                flushed = time.monotonic()

    def sample_now(self) -> None:
        self.latest = self.meter.sample()
        phase = self.clock.current
        self._rows.extend(asdict(s) | {"phase": phase} for s in self.latest)

    def flush(self) -> None:
        rows, self._rows = self._rows, []
        if rows:
            self.writer.write({f.name: [r[f.name] for r in rows] for f in USAGE_SCHEMA})

    def stop(self) -> int:
        """Stop sampling, take a last sample, and compact the parts."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=2)
            self._greenlet = None
            self.sample_now()
        self.flush()
        return self.writer.close()
