"""Samples a Meter at a fixed interval in a greenlet and writes ``usage.parquet`` parts."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import gevent

from harness.artifacts import USAGE_SCHEMA
from harness.meter.base import Meter, UsageSample
from harness.parts import PartWriter
from harness.traffic.recorder import PhaseClock

FLUSH_EVERY = 5  # samples per Parquet part


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
        count = 0
        while True:
            gevent.sleep(self.interval)
            self.sample_now()
            count += 1
            if count % FLUSH_EVERY == 0:
                self.flush()

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
