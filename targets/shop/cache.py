"""The product cache: cache-aside in a Redis-compatible server (Valkey), or none at all.

``RedisCache.get`` counts a hit or a miss exactly as the server does (``keyspace_hits`` /
``keyspace_misses`` of ``INFO stats``). When the cache server is unreachable a lookup counts as
a miss (the service falls back to the database, as it would in production) and is logged.
"""

from __future__ import annotations

import logging
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness.instrument import counters

log = logging.getLogger("shop.cache")

PRODUCT_TTL_S = 300
SOCKET_TIMEOUT_S = 0.5


class ProductCache(Protocol):
    def get(self, product_id: int) -> bytes | None: ...

    def put(self, product_id: int, payload: bytes) -> None: ...


class NoCache:
    """The ``cache: off`` variant: every lookup goes to the database, nothing is counted."""

    def get(self, product_id: int) -> bytes | None:
        return None

    def put(self, product_id: int, payload: bytes) -> None:
        return None


class RedisCache:
    """Product payloads under ``product:<id>`` with a TTL of :data:`PRODUCT_TTL_S`."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # a cache error is a miss, not seconds of backoff
        )

    def get(self, product_id: int) -> bytes | None:
        try:
            value = self._client.get(_key(product_id))
        except redis.RedisError as exc:
            log.warning("cache GET %s failed: %s", _key(product_id), exc)
            value = None
        else:
            log.debug("cache GET %s -> %s", _key(product_id), "hit" if value else "miss")
        if value is None:
            counters.cache_miss()
            return None
        counters.cache_hit()
        return bytes(value)  # type: ignore[arg-type]  # redis-py types GET loosely

    def put(self, product_id: int, payload: bytes) -> None:
        try:
            self._client.set(_key(product_id), payload, ex=PRODUCT_TTL_S)
        except redis.RedisError as exc:
            log.warning("cache SET %s failed: %s", _key(product_id), exc)
        else:
            log.debug("cache SET %s ttl=%ss %r", _key(product_id), PRODUCT_TTL_S, payload)

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False


def _key(product_id: int) -> str:
    return f"product:{product_id}"
