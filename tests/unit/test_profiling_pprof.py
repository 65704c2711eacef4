"""Decoding CPU stacks out of pprof and writing merged pprof back."""

from __future__ import annotations

from typing import Any

import pytest

from harness.profiling.pprof import UNTAGGED, decode_cpu, encode_merged, frame_label
from harness.profiling.proto import InvalidProfile, new_profile, parse_pprof


def profile(sample_type: tuple[str, str] = ("cpu", "nanoseconds"), period: int = 10**7) -> Any:
    """``main → handler → hot`` with ``hot`` inlined into ``handler`` at one location."""
    prof = new_profile()
    strings = ["", sample_type[0], sample_type[1], "cpu", "nanoseconds", "main", "handler",
               "hot", "/srv/app.py", "endpoint", "GET /x"]  # fmt: skip
    prof.string_table.extend(strings)
    prof.sample_type.add(type=1, unit=2)
    prof.period_type.type, prof.period_type.unit, prof.period = 3, 4, period
    prof.time_nanos, prof.duration_nanos = 5 * 10**9, 10 * 10**9
    for fid, name in ((1, 5), (2, 6), (3, 7)):
        prof.function.add(id=fid, name=name, filename=8)
    prof.location.add(id=1).line.add(function_id=1, line=3)
    inlined = prof.location.add(id=2)
    inlined.line.add(function_id=3, line=30)  # innermost first
    inlined.line.add(function_id=2, line=20)  # the last line is the caller
    tagged = prof.sample.add(location_id=[2, 1], value=[7])
    tagged.label.add(key=9, str=10)
    prof.sample.add(location_id=[2, 1], value=[3])
    prof.sample.add(location_id=[1], value=[0])  # empty samples are dropped
    return prof


def decoded(prof: Any, **kwargs: Any) -> dict[str, dict[tuple[str, ...], int]]:
    out = decode_cpu(parse_pprof(prof.SerializeToString()), **kwargs)
    return {ep: {tuple(f[0] for f in stack): v for stack, v in stacks.items()}
            for ep, stacks in out.by_endpoint.items()}  # fmt: skip


def test_cpu_nanoseconds_split_by_endpoint_label_root_first() -> None:
    assert decoded(profile()) == {
        "GET /x": {("main", "handler", "hot"): 7},
        UNTAGGED: {("main", "handler", "hot"): 3},
    }


def test_default_endpoint_names_unlabelled_samples() -> None:
    assert decoded(profile(), endpoint="GET /y")["GET /y"] == {("main", "handler", "hot"): 3}


def test_sample_counts_are_scaled_by_the_period_or_the_rate() -> None:
    counts = profile(("samples", "count"))
    assert decoded(counts)[UNTAGGED] == {("main", "handler", "hot"): 3 * 10**7}
    counts.period = 0
    assert decoded(counts, sample_rate=50)[UNTAGGED] == {("main", "handler", "hot"): 6 * 10**7}
    with pytest.raises(InvalidProfile, match="no CPU sample type"):
        decoded(counts)


def test_memory_profiles_are_not_cpu() -> None:
    with pytest.raises(InvalidProfile, match="no CPU sample type"):
        decoded(profile(("alloc_space", "bytes")))


@pytest.mark.parametrize("breakage", ["function", "location", "string"])
def test_dangling_references_are_invalid(breakage: str) -> None:
    prof = profile()
    if breakage == "function":
        prof.location[0].line[0].function_id = 99
    elif breakage == "location":
        prof.sample[0].location_id[0] = 42
    else:
        prof.function[0].name = 500
    with pytest.raises(InvalidProfile):
        decoded(prof)


def test_encode_merged_round_trips_stacks_labels_and_lines() -> None:
    deep = (("main", "/srv/app.py", 3), ("handler", "/srv/app.py", 20))
    data = encode_merged({"GET /x": {deep: 40}, UNTAGGED: {deep: 2, deep[:1]: 5}},
                         start_ns=10, duration_ns=20, period_ns=10**7)  # fmt: skip
    back = decode_cpu(parse_pprof(data))
    assert back.by_endpoint == {"GET /x": {deep: 40}, UNTAGGED: {deep: 2, deep[:1]: 5}}
    assert (back.start_ns, back.duration_ns, back.period_ns) == (10, 20, 10**7)


def test_frame_label_shortens_paths_and_keeps_folded_syntax() -> None:
    site = "/x/.venv/lib/python3.11/site-packages/waitress/task.py"
    assert frame_label(("service", site, 1)) == "service (waitress/task.py)"
    assert frame_label(("run", "/usr/lib/python3.11/threading.py", 1)) == "run (threading.py)"
    assert frame_label(("index", "/srv/shop/app.py", 9)) == "index (shop/app.py)"
    assert (
        frame_label(("handle", "/usr/lib/python3.11/http/server.py", 1))
        == "handle (http/server.py)"
    )
    assert frame_label(("<module>", "<string>", 1)) == "<module> (<string>)"
    assert frame_label(("a;b\nc", "", 0)) == "a:b c"
