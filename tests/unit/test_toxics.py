"""Pure parts of the fault proxy: toxic validation and planning, HTTP/1.x framing, ordering."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.faults.proxy_http import Exchange, Head, Splitter, request_body, simple_response
from harness.faults.proxy_server import Address
from harness.faults.toxics import (
    ApiProblem,
    HttpErrorAttributes,
    LatencyAttributes,
    SlicerAttributes,
    applies,
    bandwidth_pieces,
    latency_delay_s,
    parse_toxic,
    plan_chunk,
    should_fail,
    slice_sizes,
    transfer_time_s,
    updated_toxic,
)

# --- toxics: JSON in, validation -------------------------------------------------------------


def test_parse_toxic_fills_toxiproxy_defaults() -> None:
    toxic = parse_toxic({"type": "latency", "attributes": {"latency": 100}})
    assert toxic.to_json() == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 100, "jitter": 0},
    }


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"type": "lag"}, "invalid toxic type 'lag'"),
        ({"type": "latency", "attributes": {"latency": -1}}, "attributes.latency"),
        ({"type": "latency", "attributes": {"latency": "100"}}, "attributes.latency"),
        ({"type": "latency", "attributes": {"latncy": 100}}, "attributes.latncy"),
        ({"type": "latency", "stream": "sideways"}, "stream"),
        ({"type": "latency", "toxicity": 1.5}, "toxicity"),
        (
            {"type": "slicer", "attributes": {"average_size": 10, "size_variation": 10}},
            "size_variation must be smaller",
        ),
        ({"type": "http_error", "stream": "upstream"}, "stream must be downstream"),
        ({"type": "http_error", "attributes": {"status": 200}}, "attributes.status"),
        ({"type": "http_error", "attributes": {"rate": 2}}, "attributes.rate"),
        ({"attributes": {}}, "type"),
    ],
)
def test_bad_toxics_are_400_naming_the_field(body: dict[str, object], needle: str) -> None:
    with pytest.raises(ApiProblem) as caught:
        parse_toxic(body)
    assert caught.value.status == 400
    assert needle in caught.value.message


def test_update_merges_attributes_and_redraws_toxicity() -> None:
    old = parse_toxic({"type": "latency", "attributes": {"latency": 100, "jitter": 5}})
    new = updated_toxic(old, {"attributes": {"latency": 300}, "toxicity": 0.5})
    assert new.attributes == LatencyAttributes(latency=300, jitter=5)
    assert (new.name, new.toxicity) == (old.name, 0.5)
    assert new.uid != old.uid
    with pytest.raises(ApiProblem):
        updated_toxic(old, {"type": "bandwidth"})


@pytest.mark.parametrize(
    "text, listen, expected",
    [
        ("127.0.0.1:0", True, "127.0.0.1:0"),
        ("localhost:8080", True, "127.0.0.1:8080"),
        ("localhost:8080", False, "localhost:8080"),
        ("[::1]:9", False, "[::1]:9"),
    ],
)
def test_loopback_addresses_parse(text: str, listen: bool, expected: str) -> None:
    assert str(Address.parse(text, "listen", listen)) == expected


@pytest.mark.parametrize(
    "text, listen",
    [
        ("0.0.0.0:8080", True),
        ("10.0.0.1:80", False),
        ("example.com:80", False),
        ("127.0.0.1", True),
        ("127.0.0.1:0", False),
        ("127.0.0.1:70000", True),
    ],
)
def test_other_addresses_are_refused(text: str, listen: bool) -> None:
    with pytest.raises(ApiProblem) as caught:
        Address.parse(text, "listen", listen)
    assert caught.value.status == 400


# --- toxics: pure logic ----------------------------------------------------------------------


def test_toxicity_is_a_per_draw_probability() -> None:
    rng = random.Random(1)
    assert all(applies(1.0, rng) for _ in range(1000))
    assert not any(applies(0.0, rng) for _ in range(1000))
    assert 400 < sum(applies(0.5, rng) for _ in range(1000)) < 600


def test_latency_stays_within_jitter() -> None:
    rng = random.Random(2)
    attrs = LatencyAttributes(latency=100, jitter=20)
    delays = [latency_delay_s(attrs, rng) for _ in range(500)]
    assert all(0.08 <= d <= 0.12 for d in delays)
    assert max(delays) - min(delays) > 0.02  # it does vary
    assert latency_delay_s(LatencyAttributes(latency=5, jitter=50), rng) >= 0.0


@settings(max_examples=60, deadline=None)
@given(total=st.integers(0, 3000), average=st.integers(1, 300), data=st.data())
def test_slices_add_up_and_stay_in_range(total: int, average: int, data: st.DataObject) -> None:
    variation = data.draw(st.integers(0, average - 1))
    attrs = SlicerAttributes(average_size=average, size_variation=variation)
    sizes = slice_sizes(total, attrs, random.Random(total))
    assert sum(sizes) == total
    assert all(0 < s <= average + variation for s in sizes)
    assert all(s >= average - variation for s in sizes[:-1])


def test_bandwidth_trickles_in_100ms_pieces() -> None:
    assert bandwidth_pieces(2500, 10) == [1000, 1000, 500]
    assert bandwidth_pieces(0, 10) == []
    assert transfer_time_s(50_000, 100) == pytest.approx(0.5)
    assert transfer_time_s(50_000, 0) == 0.0


def test_plan_follows_the_chain() -> None:
    rng = random.Random(3)
    latency = parse_toxic({"type": "latency", "attributes": {"latency": 50}})
    latency2 = parse_toxic({"name": "more", "type": "latency", "attributes": {"latency": 20}})
    slicer = parse_toxic({"type": "slicer", "attributes": {"average_size": 4}})
    rate = parse_toxic({"type": "bandwidth", "attributes": {"rate": 7}})
    plan = plan_chunk([latency, latency2, slicer, rate], b"data", {}, rng)
    assert plan.delay_s == pytest.approx(0.07)
    assert plan.slicer == slicer.attributes and plan.bandwidth == (rate.uid, 7)
    assert not plan.drop and plan.reset_after_s is None and not plan.close_after

    timeout = parse_toxic({"type": "timeout"})
    assert plan_chunk([latency, timeout], b"x", {}, rng).drop
    reset = parse_toxic({"type": "reset_peer", "attributes": {"timeout": 250}})
    assert plan_chunk([reset], b"x", {}, rng).reset_after_s == 0.25


def test_limit_data_counts_across_chunks_then_closes() -> None:
    limit = parse_toxic({"type": "limit_data", "attributes": {"bytes": 10}})
    sent: dict[int, int] = {}
    rng = random.Random(4)
    first = plan_chunk([limit], b"123456", sent, rng)
    assert (first.data, first.close_after) == (b"123456", False)
    second = plan_chunk([limit], b"789abcdef", sent, rng)
    assert (second.data, second.close_after) == (b"789a", True)


def test_first_n_fails_exactly_n_requests() -> None:
    toxic = parse_toxic({"type": "http_error", "attributes": {"first_n": 3}})
    attrs = toxic.attributes
    assert isinstance(attrs, HttpErrorAttributes)
    rng = random.Random(5)
    assert [should_fail(toxic, attrs, rng) for _ in range(6)] == [True] * 3 + [False] * 3
    never = HttpErrorAttributes(rate=0.0)
    assert not any(should_fail(toxic, never, rng) for _ in range(100))


# --- HTTP/1.x framing ------------------------------------------------------------------------

GET = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (
    b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n"
)


def _messages(splitter: Splitter, stream: bytes, step: int) -> list[bytes]:
    """Feed ``stream`` ``step`` bytes at a time; return each message's bytes."""
    done: list[bytes] = []
    current = bytearray()
    for i in range(0, len(stream), step):
        for segment in splitter.feed(stream[i : i + step]):
            assert segment.head is not None
            current += segment.data
            if segment.end:
                done.append(bytes(current))
                current.clear()
    assert not current
    return done


@pytest.mark.parametrize("step", [1, 2, 7, 1000])
def test_requests_are_cut_at_their_boundaries(step: int) -> None:
    splitter = Splitter(True, request_body)
    assert _messages(splitter, GET + POST + CHUNKED + GET, step) == [GET, POST, CHUNKED, GET]
    assert not splitter.opaque


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([GET, POST, CHUNKED]), max_size=6), st.integers(1, 64))
def test_any_request_sequence_round_trips(requests: list[bytes], step: int) -> None:
    assert _messages(Splitter(True, request_body), b"".join(requests), step) == requests


@pytest.mark.parametrize(
    "first_bytes",
    [
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",  # PostgreSQL SSLRequest
        b"*1\r\n$4\r\nPING\r\n",  # Redis RESP
        b"PING\r\n",  # Redis inline command
        b"SET key value\r\n",  # three words, but not HTTP
    ],
)
def test_other_protocols_pass_through_at_once(first_bytes: bytes) -> None:
    splitter = Splitter(True, request_body)
    segments = splitter.feed(first_bytes)
    assert splitter.opaque
    assert [(s.data, s.head) for s in segments] == [(first_bytes, None)]
    assert [s.data for s in splitter.feed(b"more")] == [b"more"]


@pytest.mark.parametrize("first_bytes", [b"ping", b"x" * 10, b"GETX", b"get / HTTP/1.1\r\n\r\n"])
def test_bytes_that_cannot_start_a_request_are_not_held(first_bytes: bytes) -> None:
    splitter = Splitter(True, request_body)
    assert [s.data for s in splitter.feed(first_bytes)] == [first_bytes]


def test_a_partial_head_is_held_until_complete() -> None:
    splitter = Splitter(True, request_body)
    assert splitter.feed(b"GET /a HT") == []
    assert [s.data for s in splitter.feed(b"TP/1.1\r\n\r\n")] == [GET.replace(b"Host: x\r\n", b"")]


def _exchange(fail: set[str]) -> Exchange:
    def decide(head: Head) -> bytes | None:
        path = head.start[1]
        return f"LOCAL {path}|".encode() if path in fail else None

    return Exchange(decide)


def _req(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def _resp(body: str) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()


def test_local_answers_wait_for_earlier_responses() -> None:
    exchange = _exchange({"/2"})
    forward, now = exchange.from_client(_req("/1") + _req("/2") + _req("/3"))
    assert forward == _req("/1") + _req("/3") and now == []
    first = _resp("one")
    pieces = exchange.from_upstream(first[:10]) + exchange.from_upstream(first[10:] + _resp("3"))
    assert b"".join(p.data for p in pieces) == first + b"LOCAL /2|" + _resp("3")


def test_local_answer_is_immediate_when_nothing_is_pending() -> None:
    exchange = _exchange({"/1"})
    forward, now = exchange.from_client(_req("/1"))
    assert forward == b"" and [p.data for p in now] == [b"LOCAL /1|"]
    assert not now[0].close
    forward, now = exchange.from_client(_req("/2"))
    assert forward == _req("/2") and now == []


def test_interim_and_head_responses_are_framed() -> None:
    exchange = _exchange({"/2"})
    head_req = b"HEAD /1 HTTP/1.1\r\n\r\n"
    exchange.from_client(head_req + _req("/2"))
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    head_resp = b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"  # no body: it answers HEAD
    pieces = exchange.from_upstream(interim + head_resp)
    assert b"".join(p.data for p in pieces) == interim + head_resp + b"LOCAL /2|"


def test_closing_requests_close_after_the_local_answer() -> None:
    exchange = _exchange({"/1"})
    _, now = exchange.from_client(b"GET /1 HTTP/1.0\r\n\r\n")
    assert now[0].close


def test_upgrade_turns_the_connection_opaque() -> None:
    exchange = _exchange({"/ws"})
    exchange.from_client(b"GET /up HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
    exchange.from_upstream(b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x05hello")
    assert exchange.opaque
    assert exchange.from_client(_req("/ws")) == (_req("/ws"), [])


def test_simple_response_leaves_the_body_out_for_head() -> None:
    full = simple_response(503, "", head_only=False, close=True)
    assert full.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Connection: close" in full and full.endswith(b"(injected by the fault proxy)\n")
    head = simple_response(429, "slow down", head_only=True, close=False)
    assert head.endswith(b"\r\n\r\n") and b"Content-Length: 9" in head


def test_upstream_bytes_are_not_split_without_need() -> None:
    exchange = _exchange(set())
    exchange.from_client(_req("/1") + _req("/2"))
    both = _resp("one") + _resp("two")
    assert [p.data for p in exchange.from_upstream(both)] == [both]
