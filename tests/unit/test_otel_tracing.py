"""A locustfile's users with otel: every request of their client gets a new traceparent and
its trace id in the context; a traceparent the user set is kept (and its id recorded)."""

from __future__ import annotations

import random
from typing import Any

from harness.traffic.tracing import traced_user


class _Client:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> str:
        self.sent.append({"method": method, "url": url, **kwargs})
        return "response"

    def get(self, url: str, **kwargs: Any) -> str:  # as Locust's sessions: get -> request
        return self.request("GET", url, **kwargs)


class _User:
    weight = 3

    def __init__(self, host: str) -> None:
        self.host = host
        self.client = _Client()


def test_every_request_gets_its_own_traceparent_and_trace_id() -> None:
    cls = traced_user(_User, random.Random(2))
    assert cls.__name__ == "_User" and issubclass(cls, _User) and cls.weight == 3
    user = cls("http://127.0.0.1:1")
    headers = {"Accept": "x"}
    assert user.client.get("/a", headers=headers, context={"k": 1}) == "response"
    user.client.get("/b")
    first, second = user.client.sent
    assert headers == {"Accept": "x"}  # the caller's dict is not changed
    for sent in (first, second):
        _, trace_id, span_id, flags = sent["headers"]["traceparent"].split("-")
        assert len(trace_id) == 32 and len(span_id) == 16 and flags == "01"
        assert sent["context"]["trace_id"] == trace_id
    assert first["context"]["k"] == 1 and first["headers"]["Accept"] == "x"
    assert first["context"]["trace_id"] != second["context"]["trace_id"]


def test_a_traceparent_set_by_the_user_is_kept() -> None:
    user = traced_user(_User, random.Random(2))("http://127.0.0.1:1")
    mine = "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"
    user.client.get("/a", headers={"TraceParent": mine})
    (sent,) = user.client.sent
    assert sent["headers"] == {"TraceParent": mine}
    assert sent["context"]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
