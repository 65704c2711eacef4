"""Decoding push and legacy ingest payloads, and refusing bad ones with a clear message."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.profiling.ingest import decode_ingest, decode_push
from harness.profiling.pprof import UNTAGGED, encode_merged
from harness.profiling.proto import (
    _CLASSES,
    InvalidProfile,
    PayloadTooLarge,
    gunzip_if_gzipped,
)

LIMIT = 1 << 20
OTHER_PART = b'--zz\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n--zz--\r\n'
STACK = (("main", "app.py", 1), ("work", "app.py", 5))


def push(labels: dict[str, str], raw: bytes) -> bytes:
    request = _CLASSES["PushRequest"]()
    series = request.series.add()  # type: ignore[attr-defined]
    for name, value in labels.items():
        series.labels.add(name=name, value=value)
    series.samples.add(raw_profile=raw, ID="x")
    data: bytes = request.SerializeToString()
    return data


def pprof(endpoint: str = "GET /a", ns: int = 10**9) -> bytes:
    return encode_merged({endpoint: {STACK: ns}}, 1, 2, 10**7)


def test_push_gzipped_body_with_plain_and_gzipped_raw_profiles() -> None:
    labels = {"__name__": "process_cpu", "service_name": "shop", "replica": "r1"}
    for raw in (pprof(), gzip.compress(pprof())):
        (upload,) = decode_push(gzip.compress(push(labels, raw)), "application/proto", "gzip",
                                LIMIT)  # fmt: skip
        assert upload.service == "shop"
        assert upload.agent == "replica=r1,service_name=shop"
        assert upload.profile is not None
        assert upload.profile.by_endpoint == {"GET /a": {STACK: 10**9}}


def test_push_identity_json_and_series_endpoint_label() -> None:
    body = push({"service_name": "s", "endpoint": "GET /series"}, pprof(UNTAGGED, 5))
    (upload,) = decode_push(body, "application/proto", "", LIMIT)
    assert upload.profile is not None and "GET /series" in upload.profile.by_endpoint
    doc = {
        "series": [
            {
                "labels": [{"name": "service_name", "value": "j"}],
                "samples": [{"rawProfile": base64.b64encode(pprof()).decode()}],
            }
        ]
    }
    (upload,) = decode_push(json.dumps(doc).encode(), "application/json", "", LIMIT)
    assert upload.service == "j" and upload.profile is not None


def test_push_of_other_profile_types_is_skipped_not_refused() -> None:
    body = push({"__name__": "memory", "service_name": "s"}, b"anything")
    (upload,) = decode_push(body, "application/proto", "", LIMIT)
    assert upload.profile is None and upload.service == "s"


@pytest.mark.parametrize(("body", "ctype", "encoding", "message"), [
    (b"\x0a\x05abc", "application/proto", "", "not a valid PushRequest"),
    (b"plain", "application/proto", "gzip", "not gzip data"),
    (gzip.compress(b"x" * 100)[:20], "application/proto", "gzip", "truncated gzip"),
    (b"\x1f\x8b\x08\x00garbage-garbage", "application/proto", "", "corrupt gzip"),
    (b"{}", "text/plain", "", "unsupported Content-Type"),
    (b"{}", "application/proto", "br", "unsupported Content-Encoding"),
    (b"{not json", "application/json", "", "not a valid JSON PushRequest"),
])  # fmt: skip
def test_bad_push_bodies(body: bytes, ctype: str, encoding: str, message: str) -> None:
    with pytest.raises(InvalidProfile, match=message):
        decode_push(body, ctype, encoding, LIMIT)


def test_bad_raw_profile_inside_a_good_request() -> None:
    body = push({"service_name": "s"}, b"\x0a\xff")
    with pytest.raises(InvalidProfile, match="Profile"):
        decode_push(body, "application/proto", "", LIMIT)


def test_gzip_bomb_is_too_large() -> None:
    with pytest.raises(PayloadTooLarge):
        gunzip_if_gzipped(gzip.compress(b"\0" * (LIMIT + 1)), LIMIT)
    assert gunzip_if_gzipped(gzip.compress(b"ab") + gzip.compress(b"cd"), LIMIT) == b"abcd"


def test_ingest_folded_with_labels_in_the_name() -> None:
    query = "name=legacy.cpu%7Bendpoint%3DGET+%2Fx%2Cregion%3Deu%7D&sampleRate=50&from=10&until=20"
    upload = decode_ingest(query, b"a;b 5\n\na;c 10\n", "text/plain", LIMIT)
    assert upload.service == "legacy"
    assert upload.profile is not None
    assert upload.profile.by_endpoint == {
        "GET /x": {(("a", "", 0), ("b", "", 0)): 10**8, (("a", "", 0), ("c", "", 0)): 2 * 10**8}
    }
    assert (upload.profile.start_ns, upload.profile.duration_ns) == (10**10, 10**10)


def test_ingest_pprof_and_non_cpu_names() -> None:
    upload = decode_ingest("name=app&format=pprof", gzip.compress(pprof()), "", LIMIT)
    assert upload.service == "app" and upload.profile is not None
    assert decode_ingest("name=app.inuse_space&format=pprof", b"?", "", LIMIT).profile is None
    dotted = decode_ingest("name=my.app", b"f 1\n", "", LIMIT)
    assert dotted.service == "my.app"


@pytest.mark.parametrize(("query", "body", "ctype", "message"), [
    ("format=folded", b"a 1", "", "'name' is missing"),
    ("name=a.cpu{x", b"a 1", "", "unclosed"),
    ("name=a.cpu{novalue}", b"a 1", "", "not key=value"),
    ("name=a&sampleRate=abc", b"a 1", "", "not an integer"),
    ("name=a&sampleRate=0", b"a 1", "", "must be positive"),
    ("name=a", b"a;b\n", "", "folded line 1"),
    ("name=a", b"a;b x\n", "", "folded line 1"),
    ("name=a", b"\xff\xfe 1", "", "not UTF-8"),
    ("name=a&format=trie", b"", "", "unsupported format"),
    ("name=a&format=pprof", OTHER_PART, "multipart/form-data; boundary=zz", "no 'profile' part"),
])  # fmt: skip
def test_bad_ingest(query: str, body: bytes, ctype: str, message: str) -> None:
    with pytest.raises(InvalidProfile, match=message):
        decode_ingest(query, body, ctype, LIMIT)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), flips=st.lists(st.integers(0, 10**6), max_size=8))
def test_any_bytes_decode_or_raise_invalid_profile(data: bytes, flips: list[int]) -> None:
    """Random bodies, and valid ones with flipped bytes, never escape as another error."""
    good = bytearray(push({"service_name": "s"}, pprof()))
    for flip in flips:
        good[flip % len(good)] ^= 0xFF
    for body in (data, bytes(good), gzip.compress(bytes(good))):
        try:
            decode_push(body, "application/proto", "", LIMIT)
        except InvalidProfile:
            pass
