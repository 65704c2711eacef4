"""The fault catalog: one small class per kind, each an inject/revert pair.

Every fault acts only through the run's own stack, proxy and traffic (``FaultContext``), so it
can only touch what the harness started.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from typing import Any

import redis

from harness.errors import FaultError
from harness.faults.autoscale import AutoscaleBurstFault
from harness.faults.base import Fault
from harness.faults.context import FaultContext
from harness.scenario.faults import (
    AutoscaleBurst,
    CacheEviction,
    ColdStart,
    Downstream,
    FaultSpec,
    LogLevel,
    NoisyNeighbour,
    ProcessFault,
    RetryStorm,
)
from harness.stack.process import ChildProcess
from harness.util import atomic_write_json


class ProxyToxicFault:
    """Downstream failure and retry storms: toxics on the proxy in front of ``target``."""

    def __init__(self, ctx: FaultContext, spec: Downstream | RetryStorm) -> None:
        if ctx.proxy is None:
            raise FaultError(f"fault {spec.name!r}: no fault proxy in front of {spec.target!r}")
        self.proxy, self.spec = ctx.proxy, spec
        self.toxics = _toxics(spec)

    def inject(self) -> dict[str, Any]:
        if isinstance(self.spec, Downstream) and self.spec.mode == "down":
            self.proxy.disable(self.spec.target)
            return {"proxy": self.spec.target, "enabled": False}
        stream = self.spec.stream if isinstance(self.spec, Downstream) else "downstream"
        tox = self.spec.toxicity if isinstance(self.spec, Downstream) else 1.0
        for name, kind, attrs in self.toxics:
            self.proxy.add_toxic(self.spec.target, kind, attrs, name=name,
                                 stream="downstream" if kind == "http_error" else stream,
                                 toxicity=tox)
        return {"proxy": self.spec.target, "toxics": [[n, k, a] for n, k, a in self.toxics]}

    def revert(self) -> dict[str, Any]:
        if isinstance(self.spec, Downstream) and self.spec.mode == "down":
            self.proxy.enable(self.spec.target)
            return {"enabled": True}
        for name, _, _ in self.toxics:
            self.proxy.remove_toxic(self.spec.target, name, missing_ok=True)
        return {"removed": [n for n, _, _ in self.toxics]}


def _toxics(spec: Downstream | RetryStorm) -> list[tuple[str, str, dict[str, Any]]]:
    if isinstance(spec, RetryStorm):
        out = [(f"{spec.name}-errors", "http_error",
                {"status": spec.status, "rate": spec.error_rate})]
        if spec.latency_ms:
            out.append((f"{spec.name}-latency", "latency", {"latency": int(spec.latency_ms)}))
        return out
    attrs: dict[str, dict[str, Any]] = {
        "latency": {"latency": int(spec.latency_ms), "jitter": int(spec.jitter_ms)},
        "http_error": {"status": spec.status, "rate": spec.error_rate, "first_n": spec.first_n},
        "timeout": {"timeout": int(spec.timeout_ms)},
        "reset_peer": {"timeout": int(spec.timeout_ms)},
        "bandwidth": {"rate": int(spec.rate_kbps)},
        "slicer": {"average_size": 64, "size_variation": 32, "delay": 1000},
        "limit_data": {"bytes": spec.bytes},
        "slow_close": {"delay": int(spec.latency_ms)},
        "down": {},
    }
    return [(spec.name, spec.mode, attrs[spec.mode])]


class ReplicaFault:
    """kill (SIGKILL), stop (SIGTERM) or pause (SIGSTOP) replicas; revert restarts or resumes."""

    def __init__(self, ctx: FaultContext, spec: ProcessFault) -> None:
        if spec.kind != "pause" and ctx.stack.kind_of(spec.target) != "process":
            raise FaultError(f"fault {spec.name!r}: {spec.kind} restarts replicas, which built-in "
                             f"{ctx.stack.kind_of(spec.target)} services do not support; use pause")
        self.ctx, self.spec = ctx, spec
        self.touched: list[str] = []

    def inject(self) -> dict[str, Any]:
        self.touched = self.ctx.stack.alive(self.spec.target)[: self.spec.replicas]
        if self.spec.kind == "stop":
            for rid in self.touched:
                self.ctx.stack.stop_replica(self.spec.target, rid)
        else:
            sig = signal.SIGKILL if self.spec.kind == "kill" else signal.SIGSTOP
            self.ctx.stack.signal(self.spec.target, self.touched, sig)
        return {"replicas": self.touched}

    def revert(self) -> dict[str, Any]:
        if self.spec.kind == "pause":
            self.ctx.stack.signal(self.spec.target, self.touched, signal.SIGCONT)
            return {"resumed": self.touched}
        ready = {}
        for rid in self.touched:
            t0 = time.time()
            self.ctx.stack.start_replica(self.spec.target, self.ctx.cancel, rid)
            ready[rid] = round(time.time() - t0, 3)
        return {"restarted": self.touched, "time_to_ready_s": ready}


class CacheEvictionFault:
    """Flush all keys, a random fraction, or a key pattern; or squeeze maxmemory (reverted)."""

    def __init__(self, ctx: FaultContext, spec: CacheEviction) -> None:
        if ctx.stack.kind_of(spec.target) != "valkey":
            raise FaultError(f"fault {spec.name!r}: {spec.target!r} is not a cache (kind valkey)")
        self.spec = spec
        self.client = redis.Redis(host="127.0.0.1", port=ctx.stack.port_of(spec.target),
                                  socket_timeout=5)
        self.saved: dict[str, str] = {}

    def inject(self) -> dict[str, Any]:
        before = int(self.client.dbsize())
        if self.spec.mode == "flush_all":
            self.client.flushall()
        elif self.spec.mode == "maxmemory":
            self.saved = {k: str(v) for k, v in self.client.config_get("maxmemory*").items()
                          if k in ("maxmemory", "maxmemory-policy")}
            self.client.config_set("maxmemory-policy", "allkeys-lru")
            self.client.config_set("maxmemory", str(self.spec.maxmemory))
        else:
            self._delete_some()
        return {"keys_before": before, "keys_after": int(self.client.dbsize())}

    def _delete_some(self) -> None:
        rng = random.Random(0)
        pattern = self.spec.pattern if self.spec.mode == "pattern" else "*"
        share = self.spec.fraction if self.spec.mode == "fraction" else 1.0
        batch: list[Any] = []
        for key in self.client.scan_iter(match=pattern, count=1000):
            if rng.random() < share:
                batch.append(key)
            if len(batch) >= 1000:
                self.client.delete(*batch)
                batch.clear()
        if batch:
            self.client.delete(*batch)

    def revert(self) -> dict[str, Any]:
        for key, value in self.saved.items():
            self.client.config_set(key, value)
        note = "maxmemory restored" if self.saved else "nothing to revert: the cache refills"
        return {"note": note, "keys": int(self.client.dbsize())}


class ColdStartFault:
    """Replace replicas under load; ``warm_pool`` starts each new one before the old one stops."""

    def __init__(self, ctx: FaultContext, spec: ColdStart) -> None:
        self.ctx, self.spec = ctx, spec

    def inject(self) -> dict[str, Any]:
        stack, target = self.ctx.stack, self.spec.target
        old = stack.alive(target)[: self.spec.replicas]
        ready: dict[str, float] = {}
        for rid in old:
            if not self.spec.warm_pool:
                stack.stop_replica(target, rid)
            t0 = time.time()
            new = stack.start_replica(target, self.ctx.cancel)
            ready[new] = round(time.time() - t0, 3)
            if self.spec.warm_pool:
                stack.stop_replica(target, rid)
        return {"replaced": old, "time_to_ready_s": ready, "warm_pool": self.spec.warm_pool}

    def revert(self) -> dict[str, Any]:
        return {"note": "nothing to revert: the new replicas keep serving"}


class LogLevelFault:
    """Switch the target's log level at run time through its control file."""

    def __init__(self, ctx: FaultContext, spec: LogLevel) -> None:
        self.path, self.spec = ctx.stack.control_file(spec.target), spec

    def inject(self) -> dict[str, Any]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"log_level": self.spec.level})
        return {"log_level": self.spec.level}

    def revert(self) -> dict[str, Any]:
        atomic_write_json(self.path, {"log_level": None})
        return {"log_level": "restored"}


HOG = "import time\nwhile True:\n    time.process_time()\n"


class NoisyNeighbourFault:
    """CPU hogs pinned to the cores the target runs on."""

    def __init__(self, ctx: FaultContext, spec: NoisyNeighbour) -> None:
        self.ctx, self.spec = ctx, spec
        self.hogs: list[ChildProcess] = []

    def inject(self) -> dict[str, Any]:
        pids = self.ctx.stack.pids_of(self.spec.target)
        cpus = sorted(os.sched_getaffinity(pids[0])) if pids else sorted(os.sched_getaffinity(0))
        env = dict(os.environ) | {"HARNESS_RUN_DIR": str(self.ctx.run_dir.resolve())}
        for i in range(self.spec.hogs):
            hog = ChildProcess(f"{self.spec.name}-hog-{i}", [sys.executable, "-c", HOG], env,
                               self.ctx.run_dir / "logs" / f"{self.spec.name}-hog-{i}.log")
            self.hogs.append(hog)
            os.sched_setaffinity(hog.pid, cpus)
        return {"hogs": [h.pid for h in self.hogs], "cpus": cpus}

    def revert(self) -> dict[str, Any]:
        for hog in self.hogs:
            hog.stop()
        return {"stopped": len(self.hogs)}


def build_fault(ctx: FaultContext, spec: FaultSpec) -> Fault:
    """The fault object for a spec (raises FaultError when it cannot apply to its target)."""
    if isinstance(spec, Downstream | RetryStorm):
        return ProxyToxicFault(ctx, spec)
    if isinstance(spec, ProcessFault):
        return ReplicaFault(ctx, spec)
    if isinstance(spec, CacheEviction):
        return CacheEvictionFault(ctx, spec)
    if isinstance(spec, ColdStart):
        return ColdStartFault(ctx, spec)
    if isinstance(spec, AutoscaleBurst):
        return AutoscaleBurstFault(ctx, spec)
    if isinstance(spec, LogLevel):
        return LogLevelFault(ctx, spec)
    return NoisyNeighbourFault(ctx, spec)
