"""The sample target's ``/alloc`` endpoint: resident memory on demand, bounded."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

import psutil
import pytest

from targets.sample.app import MAX_ALLOC_MB, SampleApp, allocate


def _get(app: SampleApp, path: str, query: str = "") -> tuple[str, dict[str, Any]]:
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.append(status)

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
               "wsgi.input": BytesIO()}
    body = b"".join(app(environ, start_response))  # type: ignore[arg-type]
    return seen[0], json.loads(body)


def test_alloc_answers_with_the_size_it_held() -> None:
    app = SampleApp()
    status, body = _get(app, "/alloc", "mb=8")
    assert status == "200 OK" and body == {"allocated_mb": 8}
    assert app.stats()["by_path"] == {"/alloc": 1}


@pytest.mark.parametrize("query", ["mb=abc", f"mb={MAX_ALLOC_MB + 1}", "mb=-1"])
def test_alloc_rejects_bad_sizes(query: str) -> None:
    status, body = _get(SampleApp(), "/alloc", query)
    assert status == "400 Bad Request" and "mb must" in body["error"]


def test_allocated_memory_is_resident() -> None:
    """Every page is written: an untouched (calloc'd) buffer would not raise the RSS, and no
    container memory limit would ever be hit."""
    me = psutil.Process()
    before = me.memory_info().rss
    held = allocate(64)
    grown = me.memory_info().rss - before
    assert len(held) == 64 * 2**20
    assert grown >= 60 * 2**20, grown / 2**20
