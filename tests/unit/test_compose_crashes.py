"""ComposeStack.crashed() against a fake Engine API: what counts as a crash, and how often the
engine is asked (the run calls it every tick)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from harness.scenario import parse_scenario
from harness.stack import compose
from harness.stack.base import CrashWatch, Replica
from harness.stack.compose import ComposeStack
from harness.stack.compose_engine import PROJECT_LABEL
from harness.stack.local import LocalStack

SCENARIO = """
name: crashes
target:
  runtime: docker
  services:
    api: {command: "{python} -m targets.sample", replicas: 2, memory: 96Mi}
requests:
  - {name: health, path: /health}
"""
IDS = ("a" * 64, "b" * 64)


class FakeApi:
    """The low-level calls crashed() makes; ``exited`` is what the engine lists as exited."""

    def __init__(self) -> None:
        self.exited: dict[str, dict[str, Any]] = {}
        self.lists: list[dict[str, Any]] = []
        self.down = False

    def containers(self, all: bool, filters: dict[str, Any]) -> list[dict[str, Any]]:  # noqa: A002
        if self.down:
            raise docker.errors.APIError("engine went away")
        self.lists.append(filters)
        return [{"Id": cid} for cid in self.exited]

    def inspect_container(self, cid: str) -> dict[str, Any]:
        return {"State": self.exited[cid]}

    def logs(self, cid: str, tail: int) -> bytes:
        return b"line 1\nKilled \xff\n"  # not UTF-8: replaced, never an error


class FakeContainer:
    def __init__(self, cid: str, api: FakeApi) -> None:
        self.id, self.api = cid, api

    def kill(self, signal: int) -> None:
        self.api.exited[self.id] = {"ExitCode": 128 + signal, "OOMKilled": False}

    def stop(self, timeout: int) -> None:
        self.api.exited[self.id] = {"ExitCode": 0, "OOMKilled": False}


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeApi()


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ComposeStack, FakeApi]:
    clock = [1000.0]
    monkeypatch.setattr(compose.time, "monotonic", lambda: clock[0])
    stack = ComposeStack(parse_scenario(SCENARIO, tmp_path / "s.yaml"), tmp_path)
    client = FakeClient()
    stack._client = client  # type: ignore[assignment]
    stack._containers = {"api": [FakeContainer(cid, client.api) for cid in IDS]}  # type: ignore[list-item]
    stack._replicas = [Replica("api", cid[:12], "app", None, None, None, 96 * 2**20, cid)
                       for cid in IDS]
    stack.clock = clock  # type: ignore[attr-defined]
    return stack, client.api


def _tick(stack: ComposeStack, seconds: float = compose.CRASH_POLL_S) -> None:
    stack.clock[0] += seconds  # type: ignore[attr-defined]


def test_an_oom_killed_container_is_reported_once(stack: tuple[ComposeStack, FakeApi]) -> None:
    s, api = stack
    assert s.crashed() == []
    api.exited[IDS[1]] = {"ExitCode": 137, "OOMKilled": True}
    _tick(s)
    assert s.crashed() == [{"service": "api", "replica": IDS[1][:12], "exit_code": 137,
                            "last_output": "line 1\nKilled \ufffd", "oom_killed": True}]
    _tick(s)
    assert s.crashed() == []  # reported once
    assert api.lists[0] == {"label": f"{PROJECT_LABEL}={s.project}",
                            "status": ["exited", "dead"]}


def test_the_engine_is_listed_at_most_once_per_poll_interval(
        stack: tuple[ComposeStack, FakeApi]) -> None:
    s, api = stack
    for _ in range(8):  # two seconds of 0.25-s ticks
        s.crashed()
        _tick(s, 0.25)
    assert len(api.lists) == 2


def test_what_the_harness_killed_or_stopped_is_not_a_crash(
        stack: tuple[ComposeStack, FakeApi]) -> None:
    s, api = stack
    s.signal("api", [IDS[0][:12]], signal.SIGKILL)
    s.stop_replica("api", IDS[1][:12])
    assert set(api.exited) == set(IDS)
    assert s.crashed() == []


def test_an_engine_that_does_not_answer_is_asked_again(
        stack: tuple[ComposeStack, FakeApi]) -> None:
    s, api = stack
    api.down = True
    api.exited[IDS[0]] = {"ExitCode": 1, "OOMKilled": False}
    assert s.crashed() == []
    api.down = False
    _tick(s)
    assert [c["exit_code"] for c in s.crashed()] == [1]


def test_after_teardown_nothing_is_reported(stack: tuple[ComposeStack, FakeApi]) -> None:
    s, api = stack
    s._replicas = []
    api.exited[IDS[0]] = {"ExitCode": 137, "OOMKilled": False}
    assert s.crashed() == [] and api.lists == []


def test_both_runtimes_are_crash_watches(tmp_path: Path) -> None:
    scenario = parse_scenario(SCENARIO.replace("runtime: docker", "runtime: local"),
                              tmp_path / "s.yaml")
    watches: list[CrashWatch] = [ComposeStack(scenario, tmp_path), LocalStack(scenario, tmp_path)]
    assert [w.crashed() for w in watches] == [[], []]
