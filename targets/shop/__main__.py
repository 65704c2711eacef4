"""``python -m targets.shop``: configure, connect, seed, index, serve.

Exit status: 0 after a clean stop (SIGTERM / SIGINT); 2 when a setting is invalid (one line
on stderr names the variable and the allowed values); 3 when PostgreSQL cannot be reached or
seeded at startup, or the port cannot be bound. An unreachable cache is not fatal: lookups
count as misses.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

import psycopg

from harness.errors import TargetError
from harness.instrument import LogBytesHandler, WSGIMiddleware, serve_wsgi
from targets.shop.app import Shop, create_app
from targets.shop.cache import NoCache, ProductCache, RedisCache
from targets.shop.db import Database, DatabaseUnavailable, load_catalog
from targets.shop.payments_client import PaymentsClient, RequestsPaymentsClient
from targets.shop.resilience import make_policy
from targets.shop.search import SearchIndex
from targets.shop.seed import ensure_seeded
from targets.shop.variants import ConfigError, LogLevel, ShopConfig, load_config

EXIT_CONFIG = 2
EXIT_BACKING = 3
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

log = logging.getLogger("shop")


def configure_logging(level: LogLevel) -> None:
    """Log to stderr; every byte written during a request is counted by ``LogBytesHandler``."""
    formatter = logging.Formatter(LOG_FORMAT)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in (logging.StreamHandler(sys.stderr), LogBytesHandler()):
        handler.setFormatter(formatter)
        root.addHandler(handler)


def build_shop(config: ShopConfig) -> Shop:
    """Connect to the backing services, seed and index the catalog."""
    replica = os.environ.get("HARNESS_REPLICA") or f"{socket.gethostname()}-{os.getpid()}"
    db = Database(config.db_url, application_name=f"shop:{replica}"[:63])
    with db.connect(timeout_s=config.startup_timeout_s) as conn:
        seeded = ensure_seeded(conn, config.products)
        index = SearchIndex(load_catalog(conn))
    log.info("catalog: %d products (%d seeded now)", len(index), seeded)
    cache: ProductCache = NoCache()
    if config.cache_url is not None:
        redis_cache = RedisCache(config.cache_url)
        if not redis_cache.ping():
            log.warning("cache %s unreachable at startup; lookups will miss", config.cache_url)
        cache = redis_cache
    client = PaymentsClient if config.instrument else RequestsPaymentsClient
    payments = client(config.payments_url, config.payments_timeout_s)
    policy = make_policy(config.retries, config.breaker_threshold, config.breaker_cooldown_s)
    return Shop(db=db, cache=cache, payments=payments, policy=policy, index=index,
                payload=config.payload)  # fmt: skip


def main() -> int:
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(f"shop: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.log_level)
    try:
        shop = build_shop(config)
    except (DatabaseUnavailable, psycopg.Error) as exc:
        print(f"shop: database unavailable: {exc}", file=sys.stderr)
        return EXIT_BACKING
    try:
        app = create_app(shop)  # SHOP_INSTRUMENT=off: plain Flask, no Server-Timing header
        served = WSGIMiddleware(app) if config.instrument else app
        serve_wsgi(served, port=config.port, threads=config.threads)
    except TargetError as exc:
        print(f"shop: {exc}", file=sys.stderr)
        return EXIT_BACKING
    return 0


if __name__ == "__main__":
    sys.exit(main())
