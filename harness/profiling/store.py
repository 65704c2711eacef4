"""Merge uploaded CPU profiles per service, phase and endpoint, and keep them on disk.

Each upload is stamped with the phase current when it *arrives* (``phase()``). This is an
approximation: an agent uploads every 10 s, so up to one upload window of samples taken at
the end of a phase is counted in the next one. Phases much longer than the upload interval
keep that error small. After every upload, the touched files and the index are rewritten
atomically, so a crashed run still leaves what was received.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import MeteringError
from harness.profiling.ingest import Upload
from harness.profiling.layout import INDEX, ProfileEntry, ProfileIndex, slug
from harness.profiling.pprof import NS_PER_S, Stack, encode_merged, frame_label
from harness.profiling.proto import gzip_bytes
from harness.util import atomic_write_text

__all__ = ["OTHER", "PhaseSource", "ProfileStore"]

PhaseSource = Callable[[], str]
OTHER = "(other)"  # endpoints past a service's cap are merged here
MAX_ENDPOINTS = 200


@dataclass
class _Merged:
    """The stacks of one service × phase × endpoint."""

    stacks: Counter[Stack] = field(default_factory=Counter)
    uploads: int = 0
    start_ns: int = 0
    end_ns: int = 0
    period_ns: int = 0
    first_arrival: float = 0.0
    last_arrival: float = 0.0


class ProfileStore:
    """Thread-safe writer of ``profiles/``; ``add`` is called once per decoded upload."""

    def __init__(self, out_dir: Path, phase: PhaseSource,
                 max_endpoints: int = MAX_ENDPOINTS) -> None:  # fmt: skip
        self.out_dir = out_dir
        self._phase = phase
        self._max_endpoints = max_endpoints
        self._lock = threading.Lock()
        self._merged: dict[tuple[str, str, str], _Merged] = {}
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
            touched: set[tuple[str, str, str]] = set()
            for upload in uploads:
                if upload.profile is None:
                    self.index.skipped += 1
                    continue
                self.index.uploads += 1
                for endpoint, stacks in upload.profile.by_endpoint.items():
                    key = (upload.service, phase, self._capped(upload.service, endpoint))
                    self._merge(key, stacks, upload, arrival)
                    touched.add(key)
            for key in sorted(touched):
                self._write(key)
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

    def _merge(self, key: tuple[str, str, str], stacks: Counter[Stack], upload: Upload,
               arrival: float) -> None:  # fmt: skip
        merged = self._merged.setdefault(key, _Merged(first_arrival=arrival))
        merged.stacks.update(stacks)
        merged.uploads += 1
        merged.last_arrival = arrival
        prof = upload.profile
        assert prof is not None  # checked by the caller
        if prof.start_ns and (not merged.start_ns or prof.start_ns < merged.start_ns):
            merged.start_ns = prof.start_ns
        merged.end_ns = max(merged.end_ns, prof.start_ns + prof.duration_ns)
        merged.period_ns = prof.period_ns or merged.period_ns

    def _write(self, key: tuple[str, str, str]) -> None:
        service, phase, endpoint = key
        merged = self._merged[key]
        folder = Path(slug(service)) / slug(phase)
        (self.out_dir / folder).mkdir(parents=True, exist_ok=True)
        folded, pprof = folder / f"{slug(endpoint)}.folded", folder / f"{slug(endpoint)}.pb.gz"
        atomic_write_text(self.out_dir / folded, _folded_text(merged.stacks))
        duration = max(0, merged.end_ns - merged.start_ns)
        data = encode_merged({endpoint: merged.stacks}, merged.start_ns, duration,
                             merged.period_ns)  # fmt: skip
        _atomic_write_bytes(self.out_dir / pprof, gzip_bytes(data))
        entry = ProfileEntry(
            service=service, phase=phase, endpoint=endpoint,
            cpu_s=sum(merged.stacks.values()) / NS_PER_S, uploads=merged.uploads,
            folded=folded.as_posix(), pprof=pprof.as_posix(),
            first_arrival=merged.first_arrival, last_arrival=merged.last_arrival,
        )  # fmt: skip
        entries = [e for e in self.index.entries
                   if (e.service, e.phase, e.endpoint) != key]  # fmt: skip
        self.index.entries = [*entries, entry]

    def _write_index(self) -> None:
        atomic_write_text(self.out_dir / INDEX, self.index.model_dump_json(indent=2) + "\n")


def _folded_text(stacks: Counter[Stack]) -> str:
    """Folded lines, line numbers merged (one frame per function), heaviest first."""
    lines: Counter[str] = Counter()
    for stack, value in stacks.items():
        lines[";".join(frame_label(frame) for frame in stack)] += value
    return "".join(f"{stack} {value}\n" for stack, value in lines.most_common())


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)
