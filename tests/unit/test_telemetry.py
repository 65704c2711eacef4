"""Server-Timing parsing: the contract, quoting, duplicates, malformed and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.artifacts.telemetry import MAX_HEADER_CHARS, Telemetry, parse_server_timing
from harness.instrument.counters import RequestCounters

CONTRACT = (
    'cpu;dur=12.4, db;desc="r=3 w=1", cache;desc="hit=2 miss=1", '
    'ext;desc="payments=1 geo=2", retry;desc="n=2", log;desc="bytes=512"'
)


def test_contract_example_fills_every_field() -> None:
    assert parse_server_timing(CONTRACT) == Telemetry(
        cpu_ms=12.4,
        db_reads=3,
        db_writes=1,
        cache_hits=2,
        cache_misses=1,
        external={"payments": 1, "geo": 2},
        retries=2,
        log_bytes=512,
    )
    assert parse_server_timing(CONTRACT).external_calls == 3


@pytest.mark.parametrize("header", [None, "", " ", ",", " , ,"])
def test_absent_or_empty_header_reports_nothing(header: str | None) -> None:
    assert parse_server_timing(header) == Telemetry()


def test_unknown_metrics_are_ignored() -> None:
    header = 'total;dur=123.4, app;desc="x", cpu;dur=1.5, edge;dur=3;desc="r=9", miss'
    assert parse_server_timing(header) == Telemetry(cpu_ms=1.5)


def test_whitespace_and_case_of_params() -> None:
    header = '  cpu ; DUR = 7 ,db;  Desc = "r=1   w=2"  ,cache;desc=hit=4'
    parsed = parse_server_timing(header)
    assert (parsed.cpu_ms, parsed.db_reads, parsed.db_writes, parsed.cache_hits) == (7.0, 1, 2, 4)
    assert not parsed.malformed


def test_token_values_and_only_some_keys() -> None:
    parsed = parse_server_timing("retry;desc=n=3, db;desc=w=5")
    assert (parsed.retries, parsed.db_writes, parsed.db_reads) == (3, 5, None)


def test_quoted_string_may_hold_separators_and_escapes() -> None:
    header = r'x;desc="a, b; c=\"d\"", ext;desc="a\\b=1 c\"d=2", cpu;dur="2.5"'
    parsed = parse_server_timing(header)
    assert parsed.external == {"a\\b": 1, 'c"d': 2}
    assert parsed.cpu_ms == 2.5
    assert not parsed.malformed


def test_duplicates_sum_counters_and_last_cpu_wins() -> None:
    header = (
        'cpu;dur=1, db;desc="r=1", db;desc="r=2 w=1", ext;desc="pay=1", ext;desc="pay=2 geo=1", '
        'retry;desc="n=1 n=1", cpu;dur=4'
    )
    parsed = parse_server_timing(header)
    assert parsed.cpu_ms == 4.0
    assert (parsed.db_reads, parsed.db_writes) == (3, 1)
    assert parsed.external == {"pay": 3, "geo": 1}
    assert parsed.retries == 2


def test_first_param_of_a_metric_wins() -> None:
    assert parse_server_timing("cpu;dur=2;dur=9").cpu_ms == 2.0


def test_unknown_keys_inside_a_known_desc_are_ignored() -> None:
    parsed = parse_server_timing('db;desc="r=1 rows=40"')
    assert parsed == Telemetry(db_reads=1)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("cpu;dur=-1", Telemetry(malformed=True)),
        ("cpu;dur=abc", Telemetry(malformed=True)),
        ("cpu;dur=nan, db;desc=r=1", Telemetry(db_reads=1, malformed=True)),
        ("cpu;dur=inf", Telemetry(malformed=True)),
        ("cpu;dur", Telemetry(malformed=True)),
        ("cpu", Telemetry(malformed=True)),
        ("db", Telemetry(malformed=True)),
        ('db;desc="r=-1 w=2"', Telemetry(db_writes=2, malformed=True)),
        ('db;desc="r=1.5"', Telemetry(malformed=True)),
        ('db;desc="r=x"', Telemetry(malformed=True)),
        ('db;desc="r"', Telemetry(malformed=True)),
        ('db;desc="=3"', Telemetry(malformed=True)),
        ('cache;desc="hit=１"', Telemetry(malformed=True)),  # a non-ASCII digit
        ('log;desc="bytes=1234567890123456789"', Telemetry(malformed=True)),
        ('cpu;dur=1, db;desc="r=2', Telemetry(cpu_ms=1.0, malformed=True)),  # unterminated
        ('db;desc="r=1"5, cpu;dur=2', Telemetry(cpu_ms=2.0, malformed=True)),  # glued text
        ('db;desc=x"r=1", cpu;dur=2', Telemetry(cpu_ms=2.0, malformed=True)),
        ("cpu;dur=2\\", Telemetry(malformed=True)),
        ('db;desc="r=1\\', Telemetry(malformed=True)),
        ("cpu;dur=3\x00", Telemetry(cpu_ms=3.0, malformed=True)),
    ],
)
def test_malformed_values_leave_the_field_unset(header: str, expected: Telemetry) -> None:
    assert parse_server_timing(header) == expected


def test_oversized_header_keeps_the_whole_metrics_before_the_limit() -> None:
    filler = ", ".join(f"m{i};dur={i}" for i in range(2000))
    header = f'cpu;dur=5, db;desc="r=1", {filler}, retry;desc="n=9"'
    assert len(header) > MAX_HEADER_CHARS
    parsed = parse_server_timing(header)
    assert parsed == Telemetry(cpu_ms=5.0, db_reads=1, malformed=True)


def test_oversized_header_never_reads_a_truncated_number() -> None:
    header = "x" * (MAX_HEADER_CHARS - 12) + ", cpu;dur=123456789"
    parsed = parse_server_timing(header)
    assert parsed.cpu_ms is None
    assert parsed.malformed


def test_middleware_output_round_trips() -> None:
    counters = RequestCounters()
    counters.db_reads, counters.db_writes, counters.cache_misses = 3, 1, 2
    counters.retries, counters.log_bytes = 1, 77
    counters.external = {"payments": 2}
    parsed = parse_server_timing(counters.server_timing(12_345_678))
    assert parsed == Telemetry(
        cpu_ms=12.346,
        db_reads=3,
        db_writes=1,
        cache_misses=2,
        external={"payments": 2},
        retries=1,
        log_bytes=77,
    )


_HEADER_ALPHABET = st.sampled_from(list('cpudbdesrwhitmsxn=;, "\\\x00-.0123456789ábc'))


@settings(max_examples=400, deadline=None)
@given(st.text(_HEADER_ALPHABET, max_size=200) | st.text(max_size=200))
def test_random_input_never_raises(header: str) -> None:
    parsed = parse_server_timing(header)
    assert parsed.cpu_ms is None or parsed.cpu_ms >= 0
    for value in (parsed.db_reads, parsed.db_writes, parsed.retries, parsed.log_bytes):
        assert value is None or value >= 0


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**12), st.integers(0, 10**6), st.floats(0, 1e6))
def test_generated_well_formed_headers_parse_exactly(reads: int, hits: int, cpu: float) -> None:
    header = f'cpu;dur={cpu!r}, db;desc="r={reads}", cache;desc="hit={hits}"'
    assert parse_server_timing(header) == Telemetry(cpu_ms=cpu, db_reads=reads, cache_hits=hits)
