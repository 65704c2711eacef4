"""Live progress while a run goes: elapsed of total, achieved req/s, p95, errors, ≈ cost/call.

On a terminal it is a rich live line; otherwise (CI logs) a plain line every 5 seconds.
The running cost is an estimate (metered CPU and memory so far, at list prices);
the priced numbers come from the ledger at the end.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.text import Text

if TYPE_CHECKING:
    from harness.meter.sampler import Sampler
    from harness.traffic.distributed import DistributedTraffic
    from harness.traffic.engine import Traffic
    from harness.traffic.recorder import Recorder

PLAIN_EVERY_S = 5.0


@dataclass(frozen=True)
class LivePrices:
    """Unit prices for the running estimate, in USD."""

    vcpu_second: float
    gib_second: float


class Progress:
    def __init__(self, total_s: float, live: bool = True) -> None:
        self.total_s = total_s
        self.console = Console(stderr=True)
        self.live_mode = live and self.console.is_terminal
        self.prices: LivePrices | None = None
        self._live: Live | None = None
        self._t0 = 0.0
        self._last_plain = 0.0
        self._last_total = 0
        self._last_ts = 0.0

    def note(self, text: str) -> None:
        self.console.print(f"[dim]{text}[/dim]", highlight=False)

    def start(self) -> None:
        self._t0 = self._last_ts = time.time()
        if self.live_mode:
            self._live = Live(Text("running…"), console=self.console, auto_refresh=False,
                              transient=True)
            self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def update(self, rec: Recorder, sampler: Sampler, traffic: Traffic | DistributedTraffic
               ) -> None:
        now = time.time()
        total, errors = traffic.counts()
        rps = (total - self._last_total) / max(now - self._last_ts, 1e-6)
        self._last_total, self._last_ts = total, now
        recent = [ms for at, batch in rec.recent if at >= now - 5.0 for ms in batch]
        p95 = float(np.percentile(recent, 95)) if recent else 0.0
        line = (f"{now - self._t0:5.0f}/{self.total_s:.0f} s  {rps:8.1f} req/s  "
                f"p95 {p95:7.1f} ms  requests {total}  errors {errors}")
        cost = self._cost_per_call(total, sampler)
        if cost is not None:
            line += f"  compute ≈ ${cost * 1e6:,.2f} per 1M calls"
        users = traffic.stats()
        if "dropped" in users:
            line += f"  dropped {users['dropped']}"
        if self._live is not None:
            self._live.update(Text(line), refresh=True)
        elif now - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = now
            print(line, file=sys.stderr, flush=True)

    def _cost_per_call(self, total: int, sampler: Sampler) -> float | None:
        if self.prices is None or total == 0 or not sampler.first:
            return None
        first = {s.replica: s for s in sampler.first}
        cpu = sum(s.cpu_s - first[s.replica].cpu_s for s in sampler.latest if s.replica in first)
        elapsed = max(time.time() - self._t0, 1e-6)
        gib = sum(s.rss_bytes for s in sampler.latest) / 2**30
        usd = cpu * self.prices.vcpu_second + gib * elapsed * self.prices.gib_second
        return usd / total
