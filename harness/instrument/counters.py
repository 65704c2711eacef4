"""Per-request work counters that a service increments while it handles a request.

The middleware puts a fresh :class:`RequestCounters` into a :class:`contextvars.ContextVar`
for each request, so counts stay per request in threaded WSGI servers and per task in asyncio
(child tasks inherit the context and count into their parent request). Outside a request
every function here is a cheap no-op.

    from harness.instrument import counters
    counters.db_read()            # one SELECT
    counters.external("payments") # one call to a paid vendor API
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = [
    "RequestCounters",
    "cache_hit",
    "cache_miss",
    "db_read",
    "db_write",
    "external",
    "log_bytes",
    "retry",
]


class RequestCounters:
    """What one request did; rendered into the ``Server-Timing`` header by the middleware."""

    __slots__ = (
        "cache_hits",
        "cache_misses",
        "db_reads",
        "db_writes",
        "external",
        "log_bytes",
        "retries",
    )

    def __init__(self) -> None:
        self.db_reads = 0
        self.db_writes = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.retries = 0
        self.log_bytes = 0
        self.external: dict[str, int] | None = None  # created on the first external call

    def server_timing(self, cpu_ns: int) -> str:
        """The header value: ``cpu`` always, the other metrics only when non-zero."""
        parts = [f"cpu;dur={cpu_ns / 1e6:.3f}"]
        if self.db_reads or self.db_writes:
            parts.append(f'db;desc="{_pair("r", self.db_reads, "w", self.db_writes)}"')
        if self.cache_hits or self.cache_misses:
            pair = _pair("hit", self.cache_hits, "miss", self.cache_misses)
            parts.append(f'cache;desc="{pair}"')
        if self.external:
            vendors = " ".join([f"{name}={n}" for name, n in self.external.items() if n])
            parts.append(f'ext;desc="{vendors}"')
        if self.retries:
            parts.append(f'retry;desc="n={self.retries}"')
        if self.log_bytes:
            parts.append(f'log;desc="bytes={self.log_bytes}"')
        return ", ".join(parts)


def _pair(key1: str, n1: int, key2: str, n2: int) -> str:
    """``"k1=n1 k2=n2"`` leaving out a zero count (at least one is non-zero)."""
    if n1 and n2:
        return f"{key1}={n1} {key2}={n2}"
    return f"{key1}={n1}" if n1 else f"{key2}={n2}"


# Set by the middleware for the duration of a request; the sibling modules import it.
_current: ContextVar[RequestCounters | None] = ContextVar("harness_counters", default=None)


def db_read(n: int = 1) -> None:
    """Count *n* database reads (queries that return rows)."""
    counters = _current.get()
    if counters is not None:
        counters.db_reads += n


def db_write(n: int = 1) -> None:
    """Count *n* database writes (INSERT/UPDATE/DELETE statements)."""
    counters = _current.get()
    if counters is not None:
        counters.db_writes += n


def cache_hit(n: int = 1) -> None:
    """Count *n* cache lookups that found their key."""
    counters = _current.get()
    if counters is not None:
        counters.cache_hits += n


def cache_miss(n: int = 1) -> None:
    """Count *n* cache lookups that did not."""
    counters = _current.get()
    if counters is not None:
        counters.cache_misses += n


def external(vendor: str, n: int = 1) -> None:
    """Count *n* calls to the external (usually per-call priced) API *vendor*."""
    counters = _current.get()
    if counters is None:
        return
    name = _VENDOR_NAMES.get(vendor) or _vendor_name(vendor)
    if counters.external is None:
        counters.external = {name: n}
    else:
        counters.external[name] = counters.external.get(name, 0) + n


def retry(n: int = 1) -> None:
    """Count *n* retried calls (the retry itself, not the first attempt)."""
    counters = _current.get()
    if counters is not None:
        counters.retries += n


def log_bytes(n: int) -> None:
    """Count *n* bytes of log output (see :class:`harness.instrument.LogBytesHandler`)."""
    counters = _current.get()
    if counters is not None:
        counters.log_bytes += n


_VENDOR_NAMES: dict[str, str] = {}
_VENDOR_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/")


def _vendor_name(vendor: str) -> str:
    """A header-safe spelling of *vendor* (no spaces, quotes, ``=`` or control characters)."""
    name = "".join(c if c in _VENDOR_SAFE else "_" for c in vendor[:64]) or "_"
    if len(_VENDOR_NAMES) < 1024:  # bounded: vendor names are a small fixed set in practice
        _VENDOR_NAMES[vendor] = name
    return name
