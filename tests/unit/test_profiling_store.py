"""Storing merged profiles per service, phase and endpoint, and reading them back."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from harness.errors import ArtifactError
from harness.profiling import (
    OTHER,
    UNTAGGED,
    cpu_by_endpoint,
    folded_profile,
    load_index,
    read_folded,
    top_functions,
)
from harness.profiling.ingest import Upload
from harness.profiling.layout import slug
from harness.profiling.pprof import CpuProfile, Stack, decode_cpu
from harness.profiling.proto import parse_pprof
from harness.profiling.store import ProfileStore

S = 10**9
MAIN, VIEW, SQL = ("main", "/srv/app.py", 1), ("view", "/srv/app.py", 9), ("sql", "/srv/db.py", 3)


def upload(service: str, stacks: dict[str, dict[Stack, int]], start_s: int = 100) -> Upload:
    profile = CpuProfile({ep: Counter(s) for ep, s in stacks.items()}, start_s * S, 10 * S, 10**7)
    return Upload(service, f"service_name={service}", profile)


@pytest.fixture
def store(tmp_path: Path) -> tuple[ProfileStore, dict[str, str]]:
    phase = {"now": "warmup"}
    return ProfileStore(tmp_path / "profiles", lambda: phase["now"]), phase


def test_uploads_merge_per_phase_and_write_folded_and_pprof(
    store: tuple[ProfileStore, dict[str, str]],
) -> None:
    writer, phase = store
    writer.add([upload("shop", {"GET /a": {(MAIN, VIEW): 2 * S}, UNTAGGED: {(MAIN,): S}})])
    phase["now"] = "steady"
    writer.add([upload("shop", {"GET /a": {(MAIN, VIEW): S, (MAIN, VIEW, SQL): S}})], 5.0)
    writer.add([upload("shop", {"GET /a": {(MAIN, VIEW, SQL): S}}, start_s=110)], 6.0)
    root = writer.out_dir
    assert cpu_by_endpoint(root) == {"GET /a": 5.0, UNTAGGED: 1.0}
    assert cpu_by_endpoint(root, phase="steady") == {"GET /a": 3.0}
    assert cpu_by_endpoint(root, service="cart") == {}
    folded = root / "shop" / "steady" / "GET%20%2Fa.folded"
    assert folded.read_text() == (
        "main (srv/app.py);view (srv/app.py);sql (srv/db.py) 2000000000\n"
        "main (srv/app.py);view (srv/app.py) 1000000000\n"
    )
    pprof = folded.with_suffix(".pb.gz")
    first = decode_cpu(parse_pprof(gzip.decompress(pprof.read_bytes())))
    assert first.by_endpoint == {"GET /a": {(MAIN, VIEW): S, (MAIN, VIEW, SQL): S}}  # 1st upload
    writer.close()  # pprof files are rewritten at most once a minute, and on close
    merged = decode_cpu(parse_pprof(gzip.decompress(pprof.read_bytes())))
    assert merged.by_endpoint == {"GET /a": {(MAIN, VIEW): S, (MAIN, VIEW, SQL): 2 * S}}
    assert (merged.start_ns, merged.duration_ns) == (100 * S, 20 * S)
    steady = [e for e in load_index(root).entries if e.phase == "steady"]
    assert [(e.uploads, e.first_arrival, e.last_arrival) for e in steady] == [(2, 5.0, 6.0)]


def test_skipped_and_rejected_are_counted(store: tuple[ProfileStore, dict[str, str]]) -> None:
    writer, _ = store
    writer.add([Upload("shop", "a", None)])
    writer.reject("400 bad gzip")
    index = json.loads((writer.out_dir / "index.json").read_text())
    assert (index["skipped"], index["rejected"], index["last_rejection"]) == (1, 1, "400 bad gzip")
    assert index["phase_stamping"] == "arrival"


def test_endpoints_past_the_cap_are_merged(tmp_path: Path) -> None:
    writer = ProfileStore(tmp_path / "p", lambda: "run", max_endpoints=2)
    writer.add([upload("s", {f"GET /{i}": {(MAIN,): S} for i in range(4)})])
    assert cpu_by_endpoint(tmp_path / "p") == {OTHER: 2.0, "GET /0": 1.0, "GET /1": 1.0}


def test_top_functions_self_and_total_count_recursion_once(tmp_path: Path) -> None:
    rec = ("rec", "/srv/app.py", 5)
    writer = ProfileStore(tmp_path / "p", lambda: "run")
    writer.add([upload("s", {"GET /a": {(MAIN, rec, rec, SQL): 3 * S, (MAIN, rec): S,
                                        (MAIN,): S}})])  # fmt: skip
    top = top_functions(tmp_path / "p", "GET /a")
    assert top == [
        ("sql (srv/db.py)", 3.0, 3.0),
        ("main (srv/app.py)", 1.0, 5.0),
        ("rec (srv/app.py)", 1.0, 4.0),
    ]
    assert top_functions(tmp_path / "p", "GET /a", limit=1) == top[:1]
    assert top_functions(tmp_path / "p", "GET /none") == []


def test_names_become_safe_reversible_file_names() -> None:
    assert slug("GET /items/{id}") == "GET%20%2Fitems%2F%7Bid%7D"
    assert slug("..") == "%2E."
    assert slug("(untagged)") == "(untagged)"
    long = slug("x" * 500)
    assert len(long) == 120 and long != slug("x" * 499)
    assert "/" not in slug("a/b\\c\0d")


def test_readers_report_broken_artifacts(tmp_path: Path) -> None:
    assert cpu_by_endpoint(tmp_path / "absent") == {}
    (tmp_path / "p").mkdir()
    with pytest.raises(ArtifactError, match="missing"):
        load_index(tmp_path / "p")
    (tmp_path / "p" / "index.json").write_text('{"entries": [')
    with pytest.raises(ArtifactError, match="truncated"):
        cpu_by_endpoint(tmp_path / "p")
    (tmp_path / "p" / "index.json").write_text('{"entries": [{"service": 1}]}')
    with pytest.raises(ArtifactError, match="not a profile index"):
        cpu_by_endpoint(tmp_path / "p")
    bad = tmp_path / "bad.folded"
    bad.write_text("a;b 10\nno-value\n")
    with pytest.raises(ArtifactError, match="bad.folded:2"):
        read_folded(bad)


def test_folded_profile_merges_services_and_phases(tmp_path: Path) -> None:
    phase = {"now": "a"}
    writer = ProfileStore(tmp_path / "p", lambda: phase["now"])
    writer.add([upload("s1", {"GET /x": {(MAIN,): S}}), upload("s2", {"GET /x": {(MAIN,): S}})])
    phase["now"] = "b"
    writer.add([upload("s1", {"GET /x": {(MAIN, VIEW): S}})])
    assert folded_profile(tmp_path / "p", "GET /x") == {
        "main (srv/app.py)": 2.0,
        "main (srv/app.py);view (srv/app.py)": 1.0,
    }
    assert folded_profile(tmp_path / "p", "GET /x", service="s1", phase="a") == {
        "main (srv/app.py)": 1.0
    }
