"""Merge uploaded CPU profiles per service, phase and endpoint, and keep them on disk.

Each upload is stamped with the phase current when it *arrives* (``phase()``). This is an
approximation: an agent uploads every 10 s, so up to one upload window of samples taken at
the end of a phase is counted in the next one. Phases much longer than the upload interval
keep that error small.

After every upload the touched ``.folded`` files and the index are rewritten atomically, so
a crashed run still leaves what was received. The merged pprof files cost more to encode;
they are rewritten at most once per ``pprof_every_s`` and by :meth:`ProfileStore.close`.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from harness.errors import MeteringError
from harness.profiling.ingest import Upload
from harness.profiling.layout import INDEX, ProfileEntry, ProfileIndex, slug
from harness.profiling.pprof import NS_PER_S, CpuProfile, Frame, Stack, encode_merged, frame_label
from harness.profiling.proto import gzip_bytes
from harness.util import atomic_write_text

__all__ = ["OTHER", "PhaseSource", "ProfileStore"]

PhaseSource = Callable[[], str]
Key = tuple[str, str, str]  # service, phase, endpoint
OTHER = "(other)"  # endpoints past a service's cap are merged here
MAX_ENDPOINTS = 200
PPROF_EVERY_S = 60.0


@dataclass
class _Merged:
    """The stacks of one service × phase × endpoint (with lines, and folded by function)."""

    first_arrival: float
    stacks: Counter[Stack] = field(default_factory=Counter)
    folded: Counter[str] = field(default_factory=Counter)
    uploads: int = 0
    start_ns: int = 0
    end_ns: int = 0
    period_ns: int = 0
    last_arrival: float = 0.0
    pprof_at: float = 0.0  # when its pprof was last written (0: never)
    pprof_stale: bool = True


class ProfileStore:
    """Thread-safe writer of ``profiles/``; ``add`` is called once per decoded request."""

    def __init__(self, out_dir: Path, phase: PhaseSource, max_endpoints: int = MAX_ENDPOINTS,
                 pprof_every_s: float = PPROF_EVERY_S) -> None:  # fmt: skip
        self.out_dir = out_dir
        self._phase = phase
        self._max_endpoints = max_endpoints
        self._pprof_every_s = pprof_every_s
        self._lock = threading.Lock()
        self._merged: dict[Key, _Merged] = {}
        self._endpoints: dict[str, set[str]] = {}
        self.index = ProfileIndex()
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            self._write_index()
        except OSError as exc:
            raise MeteringError(f"{out_dir}: cannot create the profiles directory ({exc})") \
                from exc

    def add(self, uploads: list[Upload], arrival: float | None = None) -> None:
        """Merge ``uploads`` (one request's worth) and rewrite the files they touched."""
        arrival = time.time() if arrival is None else arrival
        phase = self._phase() or "(none)"
        with self._lock:
            touched: set[Key] = set()
            for upload in uploads:
                if upload.profile is None:
                    self.index.skipped += 1
                    continue
                self.index.uploads += 1
                for endpoint, stacks in upload.profile.by_endpoint.items():
                    key = (upload.service, phase, self._capped(upload.service, endpoint))
                    self._merge(key, stacks, upload.profile, arrival)
                    touched.add(key)
            for key in sorted(touched):
                last = self._merged[key].pprof_at
                self._write(key, arrival, pprof=not last or arrival - last >= self._pprof_every_s)
            self._write_index()

    def close(self) -> None:
        """Write every pprof not yet up to date (the receiver calls this when it stops)."""
        with self._lock:
            for key, merged in sorted(self._merged.items()):
                if merged.pprof_stale:
                    self._write(key, time.time(), pprof=True)
            self._write_index()

    def reject(self, message: str) -> None:
        """Count a request answered 4xx (the index keeps the last message)."""
        with self._lock:
            self.index.rejected += 1
            self.index.last_rejection = message[:500]
            self._write_index()

    def _capped(self, service: str, endpoint: str) -> str:
        seen = self._endpoints.setdefault(service, set())
        if endpoint in seen or len(seen) < self._max_endpoints:
            seen.add(endpoint)
            return endpoint
        return OTHER

    def _merge(self, key: Key, stacks: Counter[Stack], prof: CpuProfile, arrival: float) -> None:
        merged = self._merged.setdefault(key, _Merged(first_arrival=arrival))
        merged.stacks.update(stacks)
        for stack, value in stacks.items():
            merged.folded[";".join(map(_label, stack))] += value
        merged.uploads += 1
        merged.last_arrival = arrival
        merged.pprof_stale = True
        if prof.start_ns and (not merged.start_ns or prof.start_ns < merged.start_ns):
            merged.start_ns = prof.start_ns
        merged.end_ns = max(merged.end_ns, prof.start_ns + prof.duration_ns)
        merged.period_ns = prof.period_ns or merged.period_ns

    def _write(self, key: Key, now: float, pprof: bool) -> None:
        service, phase, endpoint = key
        merged = self._merged[key]
        folder = Path(slug(service)) / slug(phase)
        (self.out_dir / folder).mkdir(parents=True, exist_ok=True)
        folded, pprof_path = folder / f"{slug(endpoint)}.folded", folder / f"{slug(endpoint)}.pb.gz"
        text = "".join(f"{stack} {value}\n" for stack, value in merged.folded.most_common())
        atomic_write_text(self.out_dir / folded, text)
        if pprof:
            duration = max(0, merged.end_ns - merged.start_ns)
            data = encode_merged({endpoint: merged.stacks}, merged.start_ns, duration,
                                 merged.period_ns)  # fmt: skip
            _atomic_write_bytes(self.out_dir / pprof_path, gzip_bytes(data))
            merged.pprof_at, merged.pprof_stale = now, False
        entry = ProfileEntry(
            service=service, phase=phase, endpoint=endpoint,
            cpu_s=sum(merged.stacks.values()) / NS_PER_S, uploads=merged.uploads,
            folded=folded.as_posix(), pprof=pprof_path.as_posix() if merged.pprof_at else None,
            first_arrival=merged.first_arrival, last_arrival=merged.last_arrival,
        )  # fmt: skip
        entries = [e for e in self.index.entries if (e.service, e.phase, e.endpoint) != key]
        self.index.entries = [*entries, entry]

    def _write_index(self) -> None:
        atomic_write_text(self.out_dir / INDEX, self.index.model_dump_json(indent=2) + "\n")


@lru_cache(maxsize=65536)
def _label(frame: Frame) -> str:
    return frame_label(frame)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)
