"""Scenario loading: good files, every kind of bad file (path + line), env vars, render()."""

from __future__ import annotations

import copy
import json
import random
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import InputError, ScenarioInvalid
from harness.scenario import (
    Param,
    Pricing,
    RequestSpec,
    Scenario,
    Service,
    Stage,
    Target,
    Traffic,
    load_scenario,
    parse_scenario,
    validate_scenario,
)
from harness.scenario.values import parse_duration, parse_memory

# The example of the brief, minus its conflicting bits (open-model keys, locustfile).
FULL = """\
name: quickstart
description: "Sample shop under a closed-model load"
target:
  runtime: local
  entry: api
  services:
    api:
      kind: process
      command: "{python} -m targets.sample"
      health: /health
      replicas: 2
      env: {KEY: value, PORT_HINT: 8080, DEBUG: false}
      startup_timeout: 45s
      role: app
      cpu: 0.5
      memory: 512Mi
      depends_on: [db, cache]
      image: shop:latest
      billing: instance
    db:
      kind: postgres
      memory: 1Gi
    cache:
      kind: valkey
traffic:
  model: closed
  users: 10
  spawn_rate: 5
  think_time: [0.1, 0.5]
  stages:
    - {duration: 10s, users: 20, spawn_rate: 5}
    - {duration: 1m30s, users: 40}
  warmup: 5s
  timeout: 2s
requests:
  - name: search
    method: get
    path: /search?q={q}
    params:
      q: {choice: [shoe, hat]}
    weight: 3
    tenant: {choice: [acme, globex]}
  - name: buy
    method: POST
    path: /orders/{id}
    params:
      id: {range: [1, 50000]}
      qty: 2
    headers: {X-Foo: bar}
    body: {sku: "{id}", qty: "{qty}"}
    tenant: acme
pricing:
  price_book: opencost-default
  overrides: {vcpu_hour: 0.05}
variants: {}
faults: []
gate: {}
"""

MINIMAL = """\
name: mini
target:
  services:
    api: {command: "python -m app"}
requests:
  - {name: home, path: /}
"""


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Scenario:
    return load_scenario(write(tmp_path, text), env={} if env is None else env)


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioInvalid) as caught:
        load_scenario(path, env={} if env is None else env)
    assert caught.value.source == str(path)
    assert "Input should" not in str(caught.value)  # our wording, never a pydantic dump
    return caught.value.problems


def has(found: list[str], prefix: str, fragment: str = "") -> None:
    """Some problem starts with ``prefix`` (path and line) and contains ``fragment``."""
    assert any(p.startswith(prefix) and fragment in p for p in found), found


# --- good files ------------------------------------------------------------------------------


def test_full_example_loads_with_typed_values(tmp_path: Path) -> None:
    scenario = load(tmp_path, FULL)
    api, db, cache = (scenario.target.services[n] for n in ("api", "db", "cache"))
    assert scenario.target.entry == "api"
    assert api.command == ["{python}", "-m", "targets.sample"]
    assert api.env == {"KEY": "value", "PORT_HINT": "8080", "DEBUG": "false"}
    assert (api.memory, api.cpu, api.replicas, api.startup_timeout) == (512 * 2**20, 0.5, 2, 45)
    assert (db.role, db.health, db.memory) == ("database", None, 2**30)
    assert (cache.role, cache.health, cache.command) == ("cache", None, None)
    traffic = scenario.traffic
    assert traffic.think_time == (0.1, 0.5)
    assert [s.duration for s in traffic.stages or []] == [10.0, 90.0]
    assert traffic.stages is not None and traffic.stages[1].spawn_rate == 40.0
    assert (traffic.measured_duration, traffic.total_duration) == (100.0, 105.0)
    assert (traffic.timeout, traffic.users, traffic.spawn_rate) == (2.0, 10, 5.0)
    assert [r.method for r in scenario.requests] == ["GET", "POST"]
    assert scenario.pricing.overrides == {"vcpu_hour": 0.05}
    assert scenario.source == tmp_path / "scenario.yaml"


def test_dump_is_json_and_excludes_source(tmp_path: Path) -> None:
    dumped = load(tmp_path, FULL).dump()
    assert json.loads(json.dumps(dumped)) == dumped
    assert "source" not in dumped
    assert dumped["traffic"]["duration"] == 100.0


def test_minimal_file_gets_the_documented_defaults(tmp_path: Path) -> None:
    scenario = load(tmp_path, MINIMAL)
    api = scenario.target.services["api"]
    assert (scenario.target.runtime, scenario.target.entry) == ("local", "api")
    assert (api.kind, api.health, api.role) == ("process", "/health", "app")
    assert (api.replicas, api.billing) == (1, "instance")
    assert api.startup_timeout == 30.0
    traffic = scenario.traffic
    assert (traffic.model, traffic.users, traffic.spawn_rate) == ("closed", 1, 1.0)
    assert traffic.rate is None
    assert (traffic.duration, traffic.warmup, traffic.timeout) == (30.0, 0.0, 10.0)
    assert traffic.think_time == (0.0, 0.0)
    request = scenario.requests[0]
    assert (request.method, request.weight, request.tenant) == ("GET", 1.0, None)
    assert scenario.pricing.price_book == "opencost-default"
    assert (scenario.variants, scenario.faults, scenario.gate.budgets) == ({}, [], [])
    assert (scenario.target.on_crash, traffic.workers, traffic.connection_lifetime) == (
        "continue", 1, 5.0)
    assert not scenario.profiling.enabled and scenario.fault_proxy is None


def test_entry_defaults_to_the_first_app_service(tmp_path: Path) -> None:
    scenario = load(
        tmp_path,
        """\
        name: x
        target:
          services:
            cache: {kind: valkey}
            worker: {command: w, role: external}
            web: {command: w}
        requests: [{name: a, path: /}]
        """,
    )
    assert scenario.target.entry == "web"


def test_open_model(tmp_path: Path) -> None:
    scenario = load(tmp_path, MINIMAL + "traffic: {model: open, rate: 50, arrival: poisson}\n")
    traffic = scenario.traffic
    assert (traffic.rate, traffic.arrival, traffic.max_in_flight) == (50.0, "poisson", 200)
    assert traffic.users is None


def test_open_model_stages_start_from_the_first_stage_rate(tmp_path: Path) -> None:
    stages = "[{duration: 5, rate: 10}, {duration: 5, rate: 30}]"
    text = MINIMAL + f"traffic:\n  model: open\n  stages: {stages}\n"
    traffic = load(tmp_path, text).traffic
    assert (traffic.rate, traffic.duration) == (10.0, 10.0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("2m", 120.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1.5", 1.5),
        (45, 45.0),
        (0.25, 0.25),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "size"),
    [("512Mi", 512 * 2**20), ("1Gi", 2**30), ("256M", 256 * 10**6), ("1G", 10**9), (4096, 4096)],
)
def test_memory_sizes(text: object, size: int) -> None:
    assert parse_memory(text) == size


def test_command_as_a_list(tmp_path: Path) -> None:
    scenario = load(tmp_path, MINIMAL.replace('"python -m app"', "[python, -m, app]"))
    assert scenario.target.services["api"].command == ["python", "-m", "app"]


def test_with_overrides_returns_a_changed_copy(tmp_path: Path) -> None:
    scenario = load(tmp_path, FULL)
    changed = scenario.with_overrides(duration=12, runtime="docker")
    assert (changed.traffic.duration, changed.traffic.total_duration) == (12.0, 17.0)
    assert changed.target.runtime == "docker"
    assert (scenario.traffic.duration, scenario.target.runtime) == (100.0, "local")
    assert changed.source == scenario.source
    assert scenario.traffic.with_duration(3).measured_duration == 3.0
    with pytest.raises(InputError, match="runtime"):
        scenario.with_overrides(runtime="k8s")
    with pytest.raises(InputError, match="duration"):
        scenario.with_overrides(duration=0)


def test_locustfile_resolves_relative_to_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "load").mkdir()
    (tmp_path / "load" / "lf.py").write_text("# locust\n")
    scenario = load(tmp_path, MINIMAL.split("requests:")[0] + "locustfile: load/lf.py\n")
    assert scenario.locustfile == tmp_path / "load" / "lf.py"
    assert scenario.requests == []


# --- environment variables -------------------------------------------------------------------

ENV_TEXT = """\
name: env
target:
  services:
    api:
      command: "serve --port ${PORT}"
      env: {DSN: "${DSN:-postgres://localhost/db}", LITERAL: "$${NOT_SUBSTITUTED}"}
traffic: {users: "${USERS:-3}"}
requests: [{name: a, path: /}]
"""


def test_env_vars_defaults_and_escapes(tmp_path: Path) -> None:
    scenario = load(tmp_path, ENV_TEXT, env={"PORT": "8123"})
    api = scenario.target.services["api"]
    assert api.command == ["serve", "--port", "8123"]
    assert api.env == {"DSN": "postgres://localhost/db", "LITERAL": "${NOT_SUBSTITUTED}"}
    assert scenario.traffic.users == 3


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9")
    monkeypatch.setenv("USERS", "7")
    scenario = load_scenario(write(tmp_path, ENV_TEXT))
    assert scenario.traffic.users == 7
    assert scenario.target.services["api"].command == ["serve", "--port", "9"]


def test_unset_env_var_names_field_and_line(tmp_path: Path) -> None:
    found = problems(tmp_path, ENV_TEXT)
    assert found == ["target.services.api.command (line 5): environment variable PORT is not set"]


# --- bad files: one problem each, with path and line -----------------------------------------


def test_unknown_top_level_key_with_hint(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL + "trafic: {users: 2}\n")
    assert found == ['trafic (line 7): unknown key; did you mean "traffic"?']


def test_unknown_nested_key_with_hint(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        name: x
        target:
          services:
            api: {command: run}
        requests:
          - name: a
            path: /
          - name: b
            methd: POST
            path: /b
        """,
    )
    assert found == ['requests[1].methd (line 9): unknown key; did you mean "method"?']


def test_unknown_key_without_close_match_lists_allowed_keys(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL + "pricing: {zzz: 1}\n")
    allowed = "monthly_calls, overrides, price_book"
    assert found == [f"pricing.zzz (line 7): unknown key; allowed keys: {allowed}"]


def test_wrong_types(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        name: x
        target:
          services:
            api: {command: run, replicas: many, cpu: yes}
        traffic: {users: "ten"}
        requests:
          - {name: a, path: /, body: 5, weight: heavy}
        """,
    )
    has(found, 'target.services.api.replicas (line 4): must be an integer >= 1, got "many"')
    has(found, "target.services.api.cpu (line 4): must be a number > 0, got true")
    has(found, 'traffic.users (line 5): must be an integer >= 1, got "ten"')
    has(found, "requests[0].body (line 7): must be a mapping or list", "got 5")
    has(found, 'requests[0].weight (line 7): must be a number > 0, got "heavy"')
    assert len(found) == 5


def test_negative_users(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL + "traffic:\n  users: -1\n")
    assert found == ["traffic.users (line 8): must be an integer >= 1, got -1"]


def test_open_model_without_rate(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL + "traffic:\n  model: open\n")
    assert found == ["traffic.rate (line 7): required for the open model (or give stages)"]


def test_rate_with_closed_model(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL + "traffic:\n  users: 3\n  rate: 5\n")
    assert found == ["traffic.rate (line 9): applies to the open model only (model is closed)"]


def test_stage_keys_must_match_the_model(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        MINIMAL
        + """\
traffic:
  model: open
  stages:
    - {duration: 5s, users: 4}
""",
    )
    has(found, "traffic.stages[0].rate (line 10): required in an open-model stage")
    has(found, "traffic.stages[0].users (line 10): not allowed in an open-model stage")


def test_duration_shorter_than_stages(tmp_path: Path) -> None:
    found = problems(
        tmp_path, MINIMAL + "traffic:\n  duration: 5s\n  stages: [{duration: 10s, users: 2}]\n"
    )
    assert found == ["traffic.duration (line 8): 5s is shorter than the stages (10s)"]


def test_both_requests_and_locustfile(tmp_path: Path) -> None:
    (tmp_path / "lf.py").write_text("")
    found = problems(tmp_path, MINIMAL + "locustfile: lf.py\n")
    assert found == ["requests (line 5): give either requests or a locustfile, not both"]


def test_neither_requests_nor_locustfile(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL.split("requests:")[0])
    assert found == ["requests (line 1): give at least one request (or a locustfile)"]


def test_missing_locustfile(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL.split("requests:")[0] + "locustfile: nope.py\n")
    assert found == [f"locustfile (line 5): file not found: {tmp_path / 'nope.py'}"]


def test_unknown_depends_on_with_hint(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        name: x
        target:
          services:
            api:
              command: run
              depends_on: [cahce]
            cache: {kind: valkey}
        requests: [{name: a, path: /}]
        """,
    )
    assert found == [
        "target.services.api.depends_on[0] (line 6): names no service (known: api, cache); "
        'did you mean "cache"?'
    ]


def test_dependency_cycle_is_reported_with_its_path(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        name: x
        target:
          services:
            api: {command: run, depends_on: [db]}
            db: {command: run, depends_on: [queue]}
            queue: {command: run, depends_on: [api]}
        requests: [{name: a, path: /}]
        """,
    )
    assert found == [
        "target.services.api.depends_on (line 4): dependency cycle: api -> db -> queue -> api"
    ]


def test_undefined_placeholder_and_unused_param(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        name: x
        target: {services: {api: {command: run}}}
        requests:
          - name: a
            path: /items/{id}
            params:
              sku: {choice: [a, b]}
            body: {n: "{count}"}
        """,
    )
    assert found == [
        "requests[0].path (line 5): placeholder {id} is not defined in params",
        "requests[0].params.sku (line 7): param is not used in path, headers or body",
        "requests[0].body (line 8): placeholder {count} is not defined in params",
    ]


def test_duplicate_request_names(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        name: x
        target: {services: {api: {command: run}}}
        requests:
          - {name: a, path: /}
          - {name: b, path: /b}
          - {name: a, path: /c}
        """,
    )
    assert found == ['requests[2].name (line 6): duplicate request name "a" (also requests[0])']


def test_entry_naming_no_service(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL.replace("target:\n", "target:\n  entry: apo\n"))
    assert found == ['target.entry (line 3): names no service (known: api); did you mean "api"?']


def test_no_app_service_and_no_entry(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL.replace('{command: "python -m app"}', "{kind: valkey}"))
    has(found, "target.entry (line 2): no service has role app")


def test_bad_duration_and_memory_strings(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        name: x
        target:
          services:
            api:
              command: run
              startup_timeout: 3 minutes
              memory: 12 apples
        requests: [{name: a, path: /}]
        """,
    )
    assert found == [
        "target.services.api.startup_timeout (line 6): must be a duration such as 30s, 2m, "
        '1m30s, 500ms or seconds, got "3 minutes"',
        "target.services.api.memory (line 7): must be bytes or a size such as 512Mi, 1Gi, "
        '256M, 1G, got "12 apples"',
    ]


def test_command_rules_follow_kind(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        name: x
        target:
          services:
            api: {replicas: 2}
            db: {kind: postgres, command: postgres -D x}
            web: {command: "run 'unclosed"}
        requests: [{name: a, path: /}]
        """,
    )
    assert found == [
        "target.services.api.command (line 4): required for kind process",
        "target.services.db.command (line 5): not allowed for kind postgres: the harness starts it",
        "target.services.web.command (line 6): cannot split the command line: No closing quotation",
    ]


def test_bad_names(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        name: "../etc"
        target:
          services:
            Api: {command: run}
        requests: [{name: a, path: /}]
        """,
    )
    has(found, 'name (line 1): must match [A-Za-z0-9._-]+ (it names directories), got "../etc"')
    has(found, "target.services.Api (line 4): service name must match [a-z0-9_-]+")


def test_param_and_method_errors(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        name: x
        target: {services: {api: {command: run}}}
        requests:
          - name: a
            method: FETCH
            path: items/{n}
          - name: b
            path: /{n}
            params:
              n: {range: [9, 1]}
        """,
    )
    has(found, 'requests[0].method (line 5): must be one of "GET", "POST"', 'got "FETCH"')
    has(found, "requests[1].params.n.range (line 10): low 9 > high 1")
    assert len(found) == 2  # requests[0] fails on method first: its cross-checks wait


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL + "name: again\n")
    assert found == ["name (line 7): duplicate key (first on line 1); the last one wins"]


def test_several_problems_are_reported_together_sorted_by_line(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        name: x
        descripton: typo
        target:
          services:
            api: {command: run, memory: lots}
        traffic:
          users: 0
          warmup: soon
        requests:
          - {name: a, path: /, headers: {X-Token: "${TOKEN}"}}
        """,
    )
    assert [re.sub(r":.*", "", p, count=1) for p in found] == [
        "descripton (line 2)",
        "target.services.api.memory (line 5)",
        "traffic.users (line 7)",
        "traffic.warmup (line 8)",
        "requests[0].headers.X-Token (line 10)",
    ]


# --- bad files: unreadable or not a mapping --------------------------------------------------


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    found = problems(tmp_path, "name: x\ntarget:\n  services: [a, b\nrequests: []\n")
    assert len(found) == 1
    assert re.match(r"line 4, column \d+: YAML syntax error: ", found[0]), found


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    assert problems(tmp_path, text) == ["the file is empty: expected a mapping (name, target, ...)"]


@pytest.mark.parametrize(
    ("text", "kind"), [("- a\n- b\n", "a list"), ("just text\n", "the scalar 'just text'")]
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    assert problems(tmp_path, text) == [f"top level (line 1): must be a mapping, got {kind}"]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert validate_scenario(tmp_path / "nope.yaml") == ["file not found"]
    assert validate_scenario(tmp_path) == ["is a directory, not a scenario file"]


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: x\ndescription: caf\u00e9\n".encode("latin-1"))
    assert validate_scenario(path) == ["line 2: not UTF-8 text (byte 0xe9 at offset 24)"]


def test_validate_scenario_is_empty_for_a_good_file(tmp_path: Path) -> None:
    assert validate_scenario(write(tmp_path, MINIMAL)) == []


# --- render() --------------------------------------------------------------------------------

RENDER = """\
name: r
target: {services: {api: {command: run}}}
requests:
  - name: buy
    method: post
    path: /orders/{id}?q={q}
    params:
      id: {range: [1, 5]}
      q: {choice: [red shoe, "a&b"]}
      flag: true
      label: {choice: ['say "hi"', plain]}
    headers: {X-Id: "{id}", Content-Type: application/vnd.shop+json}
    body: {sku: "{id}", on: "{flag}", items: ["{q}", "n={id}"], note: "{label}!"}
    tenant: {choice: [acme, globex]}
  - name: echo
    path: /echo
    body: "plain text"
"""


def test_render_substitutes_and_keeps_types(tmp_path: Path) -> None:
    buy = load(tmp_path, RENDER).requests[0]
    assert buy.placeholders == {"id", "q", "flag", "label"}
    for seed in range(50):
        rendered = buy.render(random.Random(seed))
        body = json.loads(rendered.body_bytes or b"")
        assert rendered.method == "POST" and rendered.name == "buy"
        assert isinstance(body["sku"], int) and 1 <= body["sku"] <= 5
        assert body["on"] is True
        assert body["items"][0] in ("red shoe", "a&b") and body["items"][1] == f"n={body['sku']}"
        assert body["note"] in ('say "hi"!', "plain!")
        assert rendered.headers == {"X-Id": str(body["sku"])}
        quoted = {"red shoe": "red%20shoe", "a&b": "a%26b"}[body["items"][0]]
        assert rendered.path == f"/orders/{body['sku']}?q={quoted}"
        assert rendered.content_type == "application/vnd.shop+json"


def test_render_spreads_tenants_and_is_reproducible(tmp_path: Path) -> None:
    buy = load(tmp_path, RENDER).requests[0]
    rng = random.Random(7)
    tenants = {buy.render(rng).tenant for _ in range(200)}
    assert tenants == {"acme", "globex"}
    first = [buy.render(random.Random(3)) for _ in range(2)]
    assert first[0] == first[1]


def test_render_plain_body_and_no_tenant(tmp_path: Path) -> None:
    echo = load(tmp_path, RENDER).requests[1]
    rendered = echo.render(random.Random(0))
    assert (rendered.method, rendered.path, rendered.tenant) == ("GET", "/echo", None)
    assert rendered.body_bytes == b"plain text"
    assert rendered.content_type == "text/plain; charset=utf-8"


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.text(max_size=12), min_size=1, max_size=4))
def test_rendered_json_body_is_always_valid(values: list[str]) -> None:
    text = yaml.safe_dump(
        {
            "name": "p",
            "target": {"services": {"api": {"command": "run"}}},
            "requests": [
                {
                    "name": "a",
                    "path": "/{v}",
                    "params": {"v": {"choice": values}},
                    "body": {"whole": "{v}", "inside": "<{v}>", "{v}": 1},
                }
            ],
        }
    )
    request = parse_scenario(text, Path("p.yaml"), env={}).requests[0]
    rendered = request.render(random.Random(1))
    body = json.loads(rendered.body_bytes or b"")
    assert body["whole"] in values and body["inside"] == f"<{body['whole']}>"
    assert body[body["whole"]] == 1


# --- fuzzing: nothing but ScenarioInvalid ----------------------------------------------------

MODELS = [Scenario, Target, Service, Traffic, Stage, RequestSpec, Param, Pricing]
KEYS = sorted({key for model in MODELS for key in model.model_fields}) + ["api", "x"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True),
    st.sampled_from(["30s", "1m30s", "512Mi", "/x/{id}", "${HOME}", "${NOPE}", "{id}", "../x"]),
    st.sampled_from(["open", "GET", "process", "valkey", "api", "", "1 m"]),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=10,
)


BASES = [{}, yaml.safe_load(MINIMAL), yaml.safe_load(FULL)]
SECTIONS = [("traffic",), ("target",), ("target", "services", "api"), ("requests", 0)]


def overlay(document: object, path: tuple[str | int, ...], inner: dict[str, object]) -> None:
    """Merge ``inner`` into the mapping at ``path``, creating it when the path ends there."""
    for part in path[:-1]:
        if isinstance(document, dict) and isinstance(part, str):
            document = document.get(part)
        elif isinstance(document, list) and isinstance(part, int) and len(document) > part:
            document = document[part]
        else:
            return
    last = path[-1]
    if isinstance(document, dict) and isinstance(last, str):
        current = document.get(last)
        document[last] = {**current, **inner} if isinstance(current, dict) else inner
    elif isinstance(document, list) and isinstance(last, int) and len(document) > last:
        current = document[last]
        document[last] = {**current, **inner} if isinstance(current, dict) else inner


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(BASES),
    top=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=2),
    section=st.sampled_from(SECTIONS),
    inner=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=3),
)
def test_random_mappings_only_ever_raise_scenario_invalid(
    base: dict[str, object],
    top: dict[str, object],
    section: tuple[str | int, ...],
    inner: dict[str, object],
) -> None:
    """Random keys and values over an empty, minimal or full scenario (top level and inside a
    section): the loader returns a Scenario or raises ScenarioInvalid, nothing else."""
    document = copy.deepcopy({**base, **top})
    overlay(document, section, inner)
    text = yaml.safe_dump(document, allow_unicode=True)
    try:
        parse_scenario(text, Path("fuzz.yaml"), env={"HOME": "/root"})
    except ScenarioInvalid as exc:
        assert exc.problems
        assert all(re.search(r"\bline \d+\b|empty", p) for p in exc.problems), exc.problems


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=80))
def test_random_text_only_ever_raises_scenario_invalid(text: str) -> None:
    try:
        parse_scenario(text, Path("fuzz.yaml"), env={})
    except ScenarioInvalid as exc:
        assert exc.problems


def test_anchors_and_merge_keys(tmp_path: Path) -> None:
    scenario = load(
        tmp_path,
        """\
        name: x
        target:
          services:
            api: &app {command: run, replicas: 2}
            api2: {<<: *app, replicas: 3}
        requests: [{name: a, path: /}]
        """,
    )
    api2 = scenario.target.services["api2"]
    assert (api2.command, api2.replicas) == (["run"], 3)


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    assert problems(tmp_path, "\n".join(lines) + "\n") == ["more than 100000 values after aliases"]
