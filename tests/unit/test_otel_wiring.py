"""How a run wires OpenTelemetry: the standard variables per process service (its own env
wins), the scenario block's defaults and checks (the docker runtime's refusal: tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ScenarioInvalid
from harness.otel.env import otel_env
from harness.scenario import parse_scenario
from harness.stack.local import LocalStack

BASE = """
name: wiring
target:
  runtime: {runtime}
  services:
    api: {{command: "{{python}} -m targets.sample", env: {{OTEL_BSP_SCHEDULE_DELAY: "9000"}}}}
    cache: {{kind: valkey}}
requests: [{{name: r, path: /}}]
"""


def test_the_standard_variables_name_the_service_and_the_receiver() -> None:
    env = otel_env("http://127.0.0.1:4318", "shop", 0.2)
    assert env == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "shop", "OTEL_PROPAGATORS": "tracecontext",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on", "OTEL_BSP_SCHEDULE_DELAY": "200",
    }  # fmt: skip


def test_the_otel_block_defaults_off_and_rejects_unknown_keys() -> None:
    scenario = parse_scenario(BASE.format(runtime="local"), Path("w.yaml"))
    assert (scenario.otel.enabled, scenario.otel.grace, scenario.otel.schedule_delay) == (
        False, 5.0, 0.2)  # fmt: skip
    on = parse_scenario(BASE.format(runtime="local") + "otel: {enabled: true, grace: 2s}\n",
                        Path("w.yaml"))  # fmt: skip
    assert on.otel.enabled and on.otel.grace == 2.0 and on.dump()["otel"]["enabled"] is True
    with pytest.raises(ScenarioInvalid, match="otel.endpoint"):
        parse_scenario(BASE.format(runtime="local") + "otel: {endpoint: x}\n", Path("w.yaml"))


def test_a_service_s_own_env_wins_over_the_otel_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = parse_scenario(BASE.format(runtime="local"), Path("w.yaml"))
    stack = LocalStack(scenario, tmp_path)
    stack.service_env = {"api": otel_env("http://127.0.0.1:1", "api", 0.2)}
    spawned: dict[str, dict[str, str]] = {}

    class Started:
        name, port, service = "api", 1234, scenario.target.services["api"]

    import harness.stack.local as local

    def fake_child(rid: str, argv: list[str], env: dict[str, str], log: Path) -> object:
        spawned[rid] = env
        return object()

    monkeypatch.setattr(local, "ChildProcess", fake_child)  # the env, not a process
    stack._spawn(Started(), "api-0")  # type: ignore[arg-type]
    env = spawned["api-0"]
    assert env["OTEL_SERVICE_NAME"] == "api" and env["OTEL_BSP_SCHEDULE_DELAY"] == "9000"

