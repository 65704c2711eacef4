"""Per-request quantities, summed per (second, endpoint, phase, variant, tenant, service).

Everything the cost engine prices or attributes by is linear in per-request quantities
(calls, CPU ms, latency, billed serverless duration, bytes, operations, external calls), so the
engine never needs the rows themselves: one aggregation feeds the ledger, the summary and the
confidence intervals. ``service`` is the service that received the request (its ``replica``
mapped through usage samples; the entry service when unknown). Batches of requests are
aggregated one by one and the partial sums summed again, so memory stays bounded by one batch.
Counter columns hold sums with not-reported as 0; ``<counter>_n`` counts the requests that
reported it. ``server_timing_n`` / ``otel_n`` / ``no_telemetry_n`` count the requests whose
telemetry came from the ``Server-Timing`` header, from their OpenTelemetry spans, or from
neither (column ``telemetry_source``, see docs/telemetry.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

KEYS = ("sec", "endpoint", "phase", "variant", "tenant", "service")
GROUP_KEYS = ("endpoint", "phase", "variant", "tenant")
COUNTERS = (
    "cpu_ms",
    "bytes_out",
    "db_reads",
    "db_writes",
    "cache_hits",
    "cache_misses",
    "external_calls",
    "retries",
    "log_bytes",
)
EXTERNAL_COLUMN = "ext:"  # prefix of the per-vendor call-count columns
# From OpenTelemetry spans (docs/otel.md): summed with ``_n`` counts like COUNTERS. A request
# reporting ``cache_ops`` (spans count operations, not hits and misses) uses it for its cache
# operations; otherwise cache_ops = cache_hits + cache_misses.
SPAN_COUNTERS = ("server_ms", "span_errors")
# Where each request's telemetry came from (column telemetry_source): requests per source.
SOURCE_COUNTS = {"server-timing": "server_timing_n", "otel-spans": "otel_n",
                 "none": "no_telemetry_n"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class QuantityContext:
    t0: float  # run start: sec = floor(start - t0)
    granularity_ms: float  # serverless duration rounding
    replica_service: Mapping[str, str]
    entry: str


def parse_external(value: str) -> dict[str, int]:
    """``"payments=2;geo=1"`` -> counts per vendor; unreadable parts are skipped."""
    counts: dict[str, int] = {}
    for part in value.split(";"):
        vendor, _, number = part.strip().partition("=")
        if vendor and number.strip().isdigit():
            counts[vendor.strip()] = counts.get(vendor.strip(), 0) + int(number)
    return counts


def _by_category(column: pd.Series, values: list[float] | np.ndarray, missing: float) -> np.ndarray:
    """Per-row values looked up by the row's category code (code -1, i.e. null -> missing)."""
    table = np.append(np.asarray(values, dtype=float), missing)
    return table[column.cat.codes.to_numpy()]


def _external_columns(column: pd.Series) -> dict[str, np.ndarray]:
    categories = [parse_external(str(c)) for c in column.cat.categories]
    vendors = sorted({v for counts in categories for v in counts})
    return {
        EXTERNAL_COLUMN + v: _by_category(column, [c.get(v, 0) for c in categories], 0.0)
        for v in vendors
    }


def _service_column(replica: pd.Series, ctx: QuantityContext) -> pd.Categorical[str]:
    names = [ctx.replica_service.get(str(r), ctx.entry) for r in replica.cat.categories]
    services = sorted({*names, ctx.entry})
    codes = _by_category(replica, [services.index(n) for n in names], services.index(ctx.entry))
    return pd.Categorical.from_codes(codes.astype(np.int32), categories=pd.Index(services))


def _derive(rows: pd.DataFrame, ctx: QuantityContext) -> pd.DataFrame:
    latency = np.nan_to_num(rows["latency_ms"].to_numpy(float))
    grain = ctx.granularity_ms
    cols: dict[str, object] = {
        "sec": np.floor(rows["start"].to_numpy(float) - ctx.t0).astype(np.int64),
        **{key: rows[key] for key in GROUP_KEYS},
        "service": _service_column(rows["replica"], ctx),
        "calls": np.ones(len(rows)),
        "errors": rows["error"].notna().to_numpy(float),
        "latency_ms": latency,
        "billed_ms": np.maximum(np.ceil(latency / grain - 1e-9), 1.0) * grain,
    }
    sums: dict[str, np.ndarray] = {}
    for name in (*COUNTERS, *SPAN_COUNTERS, "cache_ops"):
        values = _values(rows, name)
        reported = ~np.isnan(values)
        sums[name] = np.where(reported, values, 0.0)
        sums[name + "_n"] = reported.astype(float)
    sums["db_ops"] = sums["db_reads"] + sums["db_writes"]
    ops_reported = sums["cache_ops_n"] > 0
    sums["cache_ops"] = np.where(ops_reported, sums["cache_ops"],
                                 sums["cache_hits"] + sums["cache_misses"])  # fmt: skip
    sums["cache_ops_n"] = np.maximum(sums["cache_ops_n"],
                                     np.maximum(sums["cache_hits_n"], sums["cache_misses_n"]))
    cols.update(sums)
    cols.update(_source_counts(rows))
    cols.update(_external_columns(rows["external"]))
    return pd.DataFrame(cols)


def _values(rows: pd.DataFrame, name: str) -> np.ndarray:
    """A counter column as float (NaN: not reported); absent columns are not reported."""
    if name not in rows.columns:
        return np.full(len(rows), np.nan)
    values: np.ndarray = rows[name].to_numpy(float)
    return values


def _source_counts(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    if "telemetry_source" not in rows.columns:
        return {column: np.zeros(len(rows)) for column in SOURCE_COUNTS.values()}
    source = rows["telemetry_source"].astype(object).to_numpy(object)
    return {column: (source == name).astype(float) for name, column in SOURCE_COUNTS.items()}


def _sum(frame: pd.DataFrame) -> pd.DataFrame:
    grouped = frame.groupby(list(KEYS), observed=True, dropna=False, sort=False)
    return grouped.sum().reset_index()


def aggregate_requests(batches: Iterable[pd.DataFrame], ctx: QuantityContext) -> pd.DataFrame:
    """Sum the quantities of request ``batches`` (at least one, maybe empty) per KEYS."""
    parts = [_sum(_derive(batch, ctx)) for batch in batches]
    if len(parts) == 1:
        return parts[0]
    merged = pd.concat(parts, ignore_index=True).fillna({c: 0.0 for c in _vendor_columns(parts)})
    return _sum(merged)


def _vendor_columns(parts: list[pd.DataFrame]) -> list[str]:
    return sorted({c for p in parts for c in p.columns if c.startswith(EXTERNAL_COLUMN)})


def vendors(columns: Iterable[str]) -> list[str]:
    """Vendor names among the columns of an aggregated frame."""
    return [c[len(EXTERNAL_COLUMN) :] for c in columns if c.startswith(EXTERNAL_COLUMN)]


@dataclass(frozen=True)
class RequestTotals:
    """Σ of every request column per (phase, service), per phase, and over the whole run."""

    by_phase_service: pd.DataFrame  # index (phase, service)
    by_phase: pd.DataFrame  # index phase
    overall: pd.Series

    @classmethod
    def of(cls, groups: pd.DataFrame) -> RequestTotals:
        """Totals of ``groups`` (request sums with ``phase`` and ``service`` columns)."""
        sums = [c for c in groups.columns if c not in (*GROUP_KEYS, "service")]
        keys = groups[["phase", "service"]].astype(str)
        by_phase_service = groups[sums].groupby([keys["phase"], keys["service"]]).sum()
        by_phase = groups[sums].groupby(keys["phase"]).sum()
        return cls(by_phase_service, by_phase, groups[sums].sum())

    def get(self, column: str, phase: str | None = None, recv: str | None = None) -> float:
        """Σ ``column`` over the requests of ``phase`` received by ``recv`` (None: any)."""
        if column not in self.overall.index:
            return 0.0
        if recv is not None:
            frame = self.by_phase_service
            if phase is None:
                level = frame.index.get_level_values(1) == recv
                return float(frame.loc[level, column].sum())
            key: object = (phase, recv)
        elif phase is not None:
            frame, key = self.by_phase, phase
        else:
            return float(self.overall[column])
        return float(frame[column].get(key, 0.0))

    def receivers(self, phase: str) -> list[str]:
        """Services that received requests in ``phase``."""
        frame = self.by_phase_service
        if not len(frame):
            return []
        rows = frame[(frame.index.get_level_values(0) == phase) & (frame["calls"] > 0)]
        return sorted({str(service) for _, service in rows.index})
