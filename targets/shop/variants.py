"""The shop's configuration and architecture variants, read from the environment.

Every variant changes the real cost of a call (see ``docs/sample-system.md``):

======================  ===================================  ==================================
variable                values (default first)               what it changes
======================  ===================================  ==================================
``SHOP_CACHE``          ``off`` | ``on``                     DB reads per ``/products`` call
``SHOP_RETRIES``        ``none`` | ``naive`` |               payments calls per checkout when
                        ``backoff_breaker``                  the downstream fails
``SHOP_PAYLOAD``        ``json`` | ``gzip``                  bytes out vs CPU of the export
``SHOP_LOG_LEVEL``      ``WARNING`` | ``INFO`` | ``DEBUG``   log bytes per call
======================  ===================================  ==================================

``SHOP_INSTRUMENT`` (``on`` | ``off``) is not a cost variant: ``off`` serves the plain Flask app
(no ``harness.instrument`` middleware, so no ``Server-Timing`` header) and calls payments with
``requests``, for OpenTelemetry instrumentation instead (``python -m targets.shop.otel``).

A bad value raises :class:`ConfigError` with one line naming the variable and the allowed
values; ``__main__`` prints it and exits with status 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar
from urllib.parse import urlsplit

Retries = Literal["none", "naive", "backoff_breaker"]
Payload = Literal["json", "gzip"]
LogLevel = Literal["WARNING", "INFO", "DEBUG"]

RETRIES: tuple[Retries, ...] = ("none", "naive", "backoff_breaker")
PAYLOADS: tuple[Payload, ...] = ("json", "gzip")
LOG_LEVELS: tuple[LogLevel, ...] = ("WARNING", "INFO", "DEBUG")

_Choice = TypeVar("_Choice", bound=str)


class ConfigError(Exception):
    """A setting is missing or invalid; the message is one line naming the variable."""


@dataclass(frozen=True, slots=True)
class ShopConfig:
    """Everything the shop reads from its environment."""

    port: int | None
    db_url: str
    cache_url: str | None
    payments_url: str
    retries: Retries
    payload: Payload
    log_level: LogLevel
    products: int
    threads: int
    payments_timeout_s: float
    breaker_threshold: int
    breaker_cooldown_s: float
    startup_timeout_s: float
    instrument: bool = True  # SHOP_INSTRUMENT: the harness.instrument middleware

    @property
    def cache(self) -> bool:
        return self.cache_url is not None


def load_config(env: Mapping[str, str]) -> ShopConfig:
    """Build the configuration from ``env`` or raise :class:`ConfigError`."""
    cache_on = _choice(env, "SHOP_CACHE", ("off", "on")) == "on"
    cache_url = _url(env, "SHOP_CACHE_URL", ("redis",)) if cache_on else None
    return ShopConfig(
        port=_int(env, "PORT", None, 1, 65535) if env.get("PORT") else None,
        db_url=_url(env, "SHOP_DB_URL", ("postgresql", "postgres")),
        cache_url=cache_url,
        payments_url=_url(env, "SHOP_PAYMENTS_URL", ("http",)).rstrip("/"),
        retries=_choice(env, "SHOP_RETRIES", RETRIES),
        payload=_choice(env, "SHOP_PAYLOAD", PAYLOADS),
        log_level=_choice(env, "SHOP_LOG_LEVEL", LOG_LEVELS, upper=True),
        products=_int(env, "SHOP_PRODUCTS", 20000, 1, 5_000_000),
        threads=_int(env, "SHOP_THREADS", 8, 1, 256),
        payments_timeout_s=_int(env, "SHOP_PAYMENTS_TIMEOUT_MS", 2000, 1, 600_000) / 1000,
        breaker_threshold=_int(env, "SHOP_BREAKER_THRESHOLD", 5, 1, 10_000),
        breaker_cooldown_s=_int(env, "SHOP_BREAKER_COOLDOWN_MS", 5000, 1, 3_600_000) / 1000,
        startup_timeout_s=_int(env, "SHOP_STARTUP_TIMEOUT_MS", 15000, 0, 3_600_000) / 1000,
        instrument=_choice(env, "SHOP_INSTRUMENT", ("on", "off")) == "on",
    )


def _choice(
    env: Mapping[str, str], name: str, allowed: tuple[_Choice, ...], *, upper: bool = False
) -> _Choice:
    raw = env.get(name, "").strip()
    value = raw.upper() if upper else raw.lower()
    if not raw:
        return allowed[0]
    if value not in allowed:
        raise ConfigError(f"invalid {name}={raw!r}; allowed values: {', '.join(allowed)}")
    return value


def _int(env: Mapping[str, str], name: str, default: int | None, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw and default is not None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigError(f"invalid {name}={raw!r}; expected an integer from {low} to {high}")
    return value


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        raise ConfigError(f"{name} is not set; expected a {'/'.join(schemes)}:// URL")
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"invalid {name}={raw!r}; expected a {'/'.join(schemes)}:// URL")
    return raw
