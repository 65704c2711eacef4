"""Read a run's profiles from a real Pyroscope server (``profiling.server``) via its querier API.

* CPU per endpoint: ``POST /querier.v1.QuerierService/SelectSeries`` (Connect JSON,
  ``groupBy: ["endpoint"]``, sum aggregation); values are CPU nanoseconds.
* Merged profiles: ``POST /querier.v1.QuerierService/SelectMergeProfile`` (Connect,
  ``application/proto``) → a pprof ``Profile``.

Authentication: HTTP basic auth and the ``X-Scope-OrgID`` tenant header. :meth:`export`
writes the same ``profiles/`` layout the embedded receiver writes, so analysis and reports
do not care where the profiles came from (and phases are exact here: each phase window is
queried on its own).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.artifacts import PhaseWindow
from harness.errors import InputError
from harness.profiling.ingest import Upload
from harness.profiling.layout import ProfileIndex
from harness.profiling.pprof import NS_PER_S, UNTAGGED, decode_cpu
from harness.profiling.proto import (
    InvalidProfile,
    gunzip_if_gzipped,
    new_select_merge_profile,
    parse_pprof,
)
from harness.profiling.store import ProfileStore

__all__ = ["CPU_PROFILE_TYPE", "ProfileQueryError", "PyroscopeQuery"]

CPU_PROFILE_TYPE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
SERIES_PATH = "/querier.v1.QuerierService/SelectSeries"
MERGE_PATH = "/querier.v1.QuerierService/SelectMergeProfile"
MAX_RESPONSE = 256 * 1024 * 1024


class ProfileQueryError(InputError):
    """The Pyroscope server could not be reached, refused us, or answered nonsense."""


class PyroscopeQuery:
    """A client of one Pyroscope server's querier API."""

    def __init__(self, url: str, basic_auth: tuple[str, str] | None = None,
                 tenant: str | None = None, timeout_s: float = 30.0) -> None:  # fmt: skip
        if not url.startswith(("http://", "https://")):
            raise ProfileQueryError(f"profiling.server {url!r}: expected an http(s):// URL")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers: dict[str, str] = {}
        if basic_auth is not None:
            token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        if tenant:
            self._headers["X-Scope-OrgID"] = tenant

    def cpu_by_endpoint(self, service: str, start: float, end: float) -> dict[str, float]:
        """CPU seconds per ``endpoint`` label of ``service`` between two Unix times."""
        request = {
            "profileTypeID": CPU_PROFILE_TYPE, "labelSelector": selector(service),
            "start": int(start * 1000), "end": int(end * 1000), "groupBy": ["endpoint"],
            "step": max(1.0, end - start), "aggregation": "TIME_SERIES_AGGREGATION_TYPE_SUM",
        }  # fmt: skip
        body = self._post(SERIES_PATH, json.dumps(request).encode(), "application/json")
        try:
            answer = json.loads(body)
            totals: dict[str, float] = {}
            for series in answer.get("series", []):
                labels = {p["name"]: p["value"] for p in series.get("labels", [])}
                name = labels.get("endpoint") or UNTAGGED
                cpu = sum(float(p.get("value", 0)) for p in series.get("points", []))
                totals[name] = totals.get(name, 0.0) + cpu / NS_PER_S
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ProfileQueryError(f"{self.url}{SERIES_PATH}: unexpected answer ({exc})") \
                from exc
        return totals

    def merged_profile(self, service: str, start: float, end: float,
                       endpoint: str | None = None) -> bytes:  # fmt: skip
        """The merged pprof (uncompressed) of ``service`` (one endpoint, or all when None).

        ``endpoint=UNTAGGED`` selects the samples without an ``endpoint`` label.
        """
        labels = {} if endpoint is None else {"endpoint": "" if endpoint == UNTAGGED else endpoint}
        request = new_select_merge_profile(CPU_PROFILE_TYPE, selector(service, labels),
                                           int(start * 1000), int(end * 1000))  # fmt: skip
        body = self._post(MERGE_PATH, request, "application/proto")
        try:
            return gunzip_if_gzipped(body, MAX_RESPONSE)
        except InvalidProfile as exc:
            raise ProfileQueryError(f"{self.url}{MERGE_PATH}: {exc}") from exc

    def export(self, profiles_dir: Path, service: str,
               phases: Sequence[PhaseWindow]) -> ProfileIndex:  # fmt: skip
        """Write ``service``'s profiles per finished phase into a fresh ``profiles_dir``."""
        current = [""]
        store = ProfileStore(profiles_dir, lambda: current[0])
        for phase in phases:
            if phase.end is None:
                continue
            current[0] = phase.name
            for endpoint in self.cpu_by_endpoint(service, phase.start, phase.end):
                data = self.merged_profile(service, phase.start, phase.end, endpoint)
                try:
                    profile = decode_cpu(parse_pprof(data), endpoint)
                except InvalidProfile as exc:
                    raise ProfileQueryError(f"{self.url}{MERGE_PATH}: {exc}") from exc
                store.add([Upload(service, self.url, profile)], arrival=phase.end)
        return store.index

    def _post(self, path: str, body: bytes, content_type: str) -> bytes:
        headers = {**self._headers, "Content-Type": content_type, "Accept": content_type}
        request = urllib.request.Request(self.url + path, body, headers, method="POST")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                data: bytes = response.read(MAX_RESPONSE + 1)
        except urllib.error.HTTPError as exc:
            raise ProfileQueryError(f"{self.url}{path}: {_http_problem(exc)}") from exc
        except (urllib.error.URLError, OSError) as exc:
            waited = time.monotonic() - started
            raise ProfileQueryError(
                f"cannot reach the Pyroscope server {self.url} ({exc}; after {waited:.1f} s)"
            ) from exc
        if len(data) > MAX_RESPONSE:
            raise ProfileQueryError(f"{self.url}{path}: answer larger than {MAX_RESPONSE} bytes")
        return data


def _http_problem(exc: urllib.error.HTTPError) -> str:
    """``401 unauthenticated: …`` from a Connect error body, or the bare status."""
    try:
        detail: Any = json.loads(exc.read(65536) or b"{}")
    except (ValueError, OSError):
        detail = {}
    code = detail.get("code", "") if isinstance(detail, dict) else ""
    message = detail.get("message", "") if isinstance(detail, dict) else ""
    text = f"HTTP {exc.code} {code}: {message}".rstrip(": ") if code else f"HTTP {exc.code}"
    if exc.code in (401, 403):
        text += " (check profiling basic auth and tenant)"
    return text


def selector(service: str, labels: dict[str, str] | None = None) -> str:
    """A label selector ``{service_name="x",k="v"}`` with values escaped."""
    pairs = {"service_name": service, **(labels or {})}
    inner = ",".join(f'{k}="{_quote(v)}"' for k, v in pairs.items())
    return "{" + inner + "}"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
