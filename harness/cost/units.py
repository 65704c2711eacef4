"""The closed vocabulary of price keys and their units.

A price is written ``<unit_price>`` per ``<CUR>/<denominator>`` (``USD/1M-requests``). Each key
has a base unit the engine counts in (vCPU-second, GiB-second, request, GB, ...); a
denominator is a whole number of base units (``1M-requests`` = 1e6 requests, ``vCPU-hour`` =
3600 vCPU-seconds, ``GiB`` = 2**30 / 1e9 GB). GB is 10**9 bytes and GiB 2**30 (FOCUS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EXTERNAL_PREFIX = "external:"
VENDOR_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")  # ":" for host:port vendors (OTel spans)
GIB_IN_GB = 2**30 / 1e9


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What one price key means: the base unit it counts and the denominators it accepts."""

    base_unit: str
    denominators: dict[str, float]  # denominator -> size in base units; first is canonical
    meaning: str


_COMPUTE = "provisioned or consumed vCPU time"
_MEMORY = "provisioned or resident memory over time"

PRICE_KEYS: dict[str, KeySpec] = {
    "vcpu_hour": KeySpec("vCPU-second", {"vCPU-hour": 3600.0}, _COMPUTE),
    "vcpu_second": KeySpec("vCPU-second", {"vCPU-second": 1.0}, _COMPUTE),
    "memory_gib_hour": KeySpec("GiB-second", {"GiB-hour": 3600.0}, _MEMORY),
    "memory_gib_second": KeySpec("GiB-second", {"GiB-second": 1.0}, _MEMORY),
    "request": KeySpec(
        "request", {"request": 1.0, "1M-requests": 1e6}, "per-request fee (serverless)"
    ),
    "egress_gb": KeySpec("GB", {"GB": 1.0, "GiB": GIB_IN_GB}, "response bytes to the internet"),
    "log_ingest_gb": KeySpec("GB", {"GB": 1.0, "GiB": GIB_IN_GB}, "log bytes ingested"),
    "db_read": KeySpec(
        "read-unit", {"read-unit": 1.0, "1M-read-units": 1e6}, "database read request unit"
    ),
    "db_write": KeySpec(
        "write-unit", {"write-unit": 1.0, "1M-write-units": 1e6}, "database write request unit"
    ),
    "cache_op": KeySpec(
        "operation", {"operation": 1.0, "1M-operations": 1e6}, "cache operation (hit or miss)"
    ),
}

EXTERNAL_SPEC = KeySpec(
    "call", {"call": 1.0, "1K-calls": 1e3, "1M-calls": 1e6}, "call to a paid external API"
)

# Settings that overrides may carry besides prices.
GRANULARITY_KEY = "serverless_granularity_ms"
MONTHLY_CALLS_KEY = "monthly_calls"
FIXED_PREFIX = "fixed_monthly:"


def key_spec(key: str) -> KeySpec | None:
    """The spec of a price key, or None when the key is not in the vocabulary."""
    if key.startswith(EXTERNAL_PREFIX):
        vendor = key[len(EXTERNAL_PREFIX) :]
        return EXTERNAL_SPEC if VENDOR_RE.match(vendor) else None
    return PRICE_KEYS.get(key)


def known_keys() -> str:
    """The vocabulary, for error messages."""
    return ", ".join([*PRICE_KEYS, f"{EXTERNAL_PREFIX}<vendor>"])


# Active ISO 4217 codes (2024). A book in another currency is rejected.
ISO_4217 = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR
    FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD
    JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
    MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
    QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS
    TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR
    ZMW ZWG
    """.split()  # noqa: SIM905 (a list literal of 160 codes is harder to read)
)
