"""Pure helpers of the benchmark scripts (``bench/``) and the calibrated target's parts."""

from __future__ import annotations

import io
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from attribution_checks import _integrate  # noqa: E402
from benchlib import order_sections, replace_section, table  # noqa: E402
from loadgen import Side, common_window, steady  # noqa: E402

from targets.calibrated.app import BadRequest, CalibratedApp, body_of, burn_until, number  # noqa: E402


def test_replace_section_appends_then_replaces_only_its_own_block() -> None:
    text = replace_section("# Results\n", "a", "first A")
    text = replace_section(text, "b", "first B")
    text = replace_section(text, "a", "second A")
    assert text.count("<!-- bench:a -->") == 1
    assert "second A" in text and "first A" not in text
    assert "first B" in text
    assert text.index("bench:a") < text.index("bench:b")  # replaced in place, not moved


def test_order_sections_sorts_known_sections_and_keeps_the_rest() -> None:
    text = "# Results\n"
    for name in ("metering", "custom", "loadgen"):
        text = replace_section(text, name, f"body of {name}")
    ordered = order_sections(text)
    assert ordered.startswith("# Results\n\n<!-- bench:loadgen -->")
    assert ordered.index("bench:loadgen") < ordered.index("bench:metering") < ordered.index(
        "bench:custom")
    assert order_sections(ordered) == ordered
    assert all(f"body of {n}" in ordered for n in ("metering", "custom", "loadgen"))


def test_table_is_markdown() -> None:
    assert table(["x", "y"], [[1, 2]]).splitlines() == ["| x | y |", "|---|---|", "| 1 | 2 |"]


def test_steady_drops_warmup_and_the_partial_last_second() -> None:
    per_second = Counter({100: 5, 101: 50, 102: 60, 103: 70, 104: 3})
    assert steady(per_second, skip=1) == (101, 104)
    with pytest.raises(SystemExit):
        steady(Counter({100: 1, 101: 1}), skip=1)


def test_common_window_is_where_both_generators_were_steady() -> None:
    a = Side(None, None, Counter({s: 10 for s in range(100, 130)}))  # type: ignore[arg-type]
    b = Side(None, None, Counter({s: 10 for s in range(104, 140)}))  # type: ignore[arg-type]
    assert common_window({"a": a, "b": b}, skip=3) == (107, 129)
    c = Side(None, None, Counter({s: 10 for s in range(126, 140)}))  # type: ignore[arg-type]
    with pytest.raises(SystemExit, match="overlapped"):
        common_window({"a": a, "c": c}, skip=3)


def test_integrate_interpolates_cpu_at_window_edges_and_holds_rss() -> None:
    samples = pd.DataFrame({"ts": [0.0, 1.0, 2.0, 3.0], "cpu_s": [0.0, 1.0, 3.0, 3.5],
                            "rss_bytes": [2**30, 2**31, 2**30, 2**30],
                            "alive": [True, True, False, True]})  # fmt: skip
    cpu_s, gib_s = _integrate(samples, 0.5, 2.5)
    assert cpu_s == pytest.approx(3.25 - 0.5)
    assert gib_s == pytest.approx(0.5 * 1 + 1.0 * 2 + 0.0)  # the dead interval holds no memory


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 200_001])
def test_body_of_is_exactly_the_size_asked(size: int) -> None:
    assert len(body_of(size)) == size


def test_burn_until_spends_the_thread_cpu_asked() -> None:
    start = time.thread_time_ns()
    burn_until(start, 5.0)
    spent_ms = (time.thread_time_ns() - start) / 1e6
    assert 5.0 <= spent_ms < 5.5


def test_number_bounds() -> None:
    assert number({"x": ["2.5"]}, "x", 10) == 2.5
    assert number({}, "x", 10) == 0.0
    for bad in (["abc"], ["-1"], ["11"]):
        with pytest.raises(BadRequest):
            number({"x": bad}, "x", 10)


def _call(app: CalibratedApp, path: str, query: str) -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
               "wsgi.input": io.BytesIO()}  # fmt: skip
    body = b"".join(app(environ, start_response))  # type: ignore[arg-type]
    return seen["status"], seen["headers"], body


def test_calibrated_app_answers_exact_bytes_and_counts_paths() -> None:
    app = CalibratedApp(db=None)
    status, headers, body = _call(app, "/light", "cpu_ms=1&bytes=1234")
    assert status == "200 OK" and len(body) == 1234 and headers["Content-Length"] == "1234"
    assert _call(app, "/light", "bytes=x")[0].startswith("400")
    assert _call(app, "/w", "reads=1")[0].startswith("400")  # DB work without a database
    assert app.stats() == {"served": 1, "by_path": {"/light": 1}}  # 400s are not served
