"""What the scenario's users send: fixed requests built once, templated ones per call, the
endpoint header on every call, and a connection closed once per ``connection_lifetime``."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from harness.scenario import parse_scenario
from harness.traffic import calls

SCENARIO = """
name: calls
target: {services: {api: {command: "true"}}}
traffic: {model: closed, users: 1, duration: 10s, connection_lifetime: 5s}
requests:
  - {name: fixed, path: /cheap, weight: 1}
  - name: templated
    method: POST
    path: "/items/{id}"
    params: {id: {choice: [1, 2]}}
    body: {"id": "{id}"}
    weight: 1
"""


class _Client:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, path: str, **kw: Any) -> None:
        self.calls.append({"method": method, "path": path, **kw})


class _User:
    def __init__(self) -> None:
        self.client = _Client()


def test_fixed_and_templated_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = parse_scenario(SCENARIO, Path("calls.yaml"))
    call = calls.make_call(scenario, random.Random(3))
    clock = [100.0]
    monkeypatch.setattr(calls.time, "monotonic", lambda: clock[0])
    user = _User()
    for _ in range(40):
        call(user, None)
        clock[0] += 0.5
    sent = user.client.calls
    fixed = [c for c in sent if c["name"] == "fixed"]
    templated = [c for c in sent if c["name"] == "templated"]
    assert fixed and templated
    assert {c["path"] for c in fixed} == {"/cheap"} and fixed[0]["data"] is None
    assert {c["path"] for c in templated} == {"/items/1", "/items/2"}
    for call in templated:
        assert call["data"] == f'{{"id":{call["path"][-1]}}}'.encode()
        assert call["headers"]["Content-Type"] == "application/json"
        assert call["context"]["bytes_in"] == len(call["data"])
    assert all("X-Harness-Endpoint" not in c["headers"] for c in sent)  # not profiled
    profiled = parse_scenario(SCENARIO + "profiling: {enabled: true}\n", Path("calls.yaml"))
    user = _User()
    calls.make_call(profiled, random.Random(3))(user, None)
    assert user.client.calls[0]["headers"]["X-Harness-Endpoint"] in ("fixed", "templated")
    # 40 calls 0.5 s apart: the connection is closed on the call after each 5 s of age.
    closed = [i for i, c in enumerate(sent) if c["headers"].get("Connection") == "close"]
    assert closed == [10, 21, 32]
    # The fixed request's one headers dict is never changed by a closing call.
    assert all("Connection" not in c["headers"] for i, c in enumerate(sent) if i not in closed)


def test_with_otel_every_call_sends_a_new_sampled_traceparent_and_keeps_its_trace_id() -> None:
    scenario = parse_scenario(SCENARIO + "otel: {enabled: true}\n", Path("calls.yaml"))
    call = calls.make_call(scenario, random.Random(5))
    user = _User()
    for _ in range(30):
        call(user, None)
    sent = user.client.calls
    parents = [c["headers"]["traceparent"] for c in sent]
    assert len(set(parents)) == 30
    for c, parent in zip(sent, parents, strict=True):
        version, trace_id, span_id, flags = parent.split("-")
        assert (version, flags, len(trace_id), len(span_id)) == ("00", "01", 32, 16)
        assert int(trace_id, 16) and int(span_id, 16) and trace_id == trace_id.lower()
        assert c["context"]["trace_id"] == trace_id
    fixed = [c for c in sent if c["name"] == "fixed"]
    assert len({id(c["headers"]) for c in fixed}) == len(fixed)  # a copy per call, not shared


def test_without_otel_no_traceparent_and_no_trace_id() -> None:
    scenario = parse_scenario(SCENARIO, Path("calls.yaml"))
    call = calls.make_call(scenario, random.Random(5))
    user = _User()
    for _ in range(10):
        call(user, None)
    assert all("traceparent" not in c["headers"] for c in user.client.calls)
    assert all("trace_id" not in c["context"] for c in user.client.calls)


def test_trace_ids_are_unique_across_runs_and_leave_the_seeded_choices_alone() -> None:
    plain = parse_scenario(SCENARIO, Path("calls.yaml"))
    traced = parse_scenario(SCENARIO + "otel: {enabled: true}\n", Path("calls.yaml"))
    users = {}
    for name, scenario in (("plain", plain), ("a", traced), ("b", traced)):
        call = calls.make_call(scenario, random.Random(7))  # the same seed every time
        users[name] = _User()
        for _ in range(20):
            call(users[name], None)
    paths = {name: [c["path"] for c in user.client.calls] for name, user in users.items()}
    assert paths["plain"] == paths["a"] == paths["b"]  # same endpoints and params
    ids_a = [c["context"]["trace_id"] for c in users["a"].client.calls]
    ids_b = [c["context"]["trace_id"] for c in users["b"].client.calls]
    assert not set(ids_a) & set(ids_b)  # a second run (or worker) never reuses an id
