"""The user's own system in a scenario: ``target.compose`` (read as is), ``venv`` / ``python``
on a service, and the ``requests: {locustfile: ...}`` spelling. Files are real, in tmp_path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.errors import InputError, ScenarioInvalid
from harness.scenario import Scenario, load_scenario
from harness.scenario.compose import ComposeFileError, read_compose_file

COMPOSE = """\
version: "2.4"
services:
  web:
    image: example/web:1
    ports: ["127.0.0.1:8080:80", "9000/udp"]
    cpus: 0.5
    mem_limit: 256m
  cache:
    image: example/redis:7
    ports: [{target: 6379, published: 6379, host_ip: 127.0.0.1}]
  worker:
    image: example/worker:1
    deploy:
      resources:
        limits: {cpus: "${WORKER_CPUS:-0.25}", memory: 1g}
"""

SCENARIO = """\
name: own
target:
  compose: stack/docker-compose.yml
  entry: web
traffic: {users: 1, duration: 2s}
requests: [{name: home, path: /}]
"""


def write(tmp_path: Path, scenario: str, compose: str = COMPOSE) -> Path:
    (tmp_path / "stack").mkdir(exist_ok=True)
    (tmp_path / "stack" / "docker-compose.yml").write_text(compose, encoding="utf-8")
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(scenario), encoding="utf-8")
    return path


def load(tmp_path: Path, scenario: str = SCENARIO, compose: str = COMPOSE) -> Scenario:
    return load_scenario(write(tmp_path, scenario, compose), env={})


def problems(tmp_path: Path, scenario: str = SCENARIO, compose: str = COMPOSE) -> list[str]:
    with pytest.raises(ScenarioInvalid) as caught:
        load(tmp_path, scenario, compose)
    return caught.value.problems


def test_compose_services_ports_and_limits_come_from_the_file(tmp_path: Path) -> None:
    scenario = load(tmp_path)
    target = scenario.target
    assert target.compose == tmp_path / "stack" / "docker-compose.yml"
    assert target.runtime == "docker"  # implied by compose
    assert list(target.services) == ["web", "cache", "worker"]  # the file's order
    assert {s.kind for s in target.services.values()} == {"compose"}
    assert {s.role for s in target.services.values()} == {"app"}
    web, cache, worker = (target.services[n] for n in ("web", "cache", "worker"))
    assert (web.cpu, web.memory) == (0.5, 256 * 2**20)
    assert (cache.cpu, cache.memory) == (None, None)
    assert (worker.cpu, worker.memory) == (0.25, 2**30)  # deploy limits, ${VAR:-default}
    assert web.health is None  # no health path: any HTTP answer will do


def test_compose_ports_read_as_container_ports(tmp_path: Path) -> None:
    found = read_compose_file(write(tmp_path, SCENARIO).parent / "stack/docker-compose.yml",
                              env={"WORKER_CPUS": "2"})
    assert found.services["web"].ports == [80]  # udp is not an HTTP entry
    assert found.services["cache"].ports == [6379]
    assert found.services["worker"].ports == [] and found.services["worker"].cpu == 2.0


def test_services_override_pricing_and_startup(tmp_path: Path) -> None:
    text = SCENARIO.replace("  entry: web\n", """\
  entry: web
  services:
    web: {health: /healthz, startup_timeout: 90s, cpu: 2}
    cache: {role: cache, billing: usage}
""")
    services = load(tmp_path, text).target.services
    assert (services["web"].health, services["web"].startup_timeout) == ("/healthz", 90.0)
    assert (services["web"].cpu, services["web"].memory) == (2.0, 256 * 2**20)
    assert (services["cache"].role, services["cache"].billing) == ("cache", "usage")


def test_entry_defaults_to_the_first_service_publishing_a_port(tmp_path: Path) -> None:
    text = SCENARIO.replace("  entry: web\n", "")
    compose = COMPOSE.replace('    ports: ["127.0.0.1:8080:80", "9000/udp"]\n', "")
    assert load(tmp_path, text, compose).target.entry == "cache"


def test_entry_not_in_the_file_has_a_hint(tmp_path: Path) -> None:
    found = problems(tmp_path, SCENARIO.replace("entry: web", "entry: wbe"))
    assert len(found) == 1 and found[0].startswith("target.entry (line 4): names no service of ")
    assert "docker-compose.yml (known: web, cache, worker)" in found[0]
    assert 'did you mean "web"?' in found[0]


def test_entry_that_publishes_no_port(tmp_path: Path) -> None:
    found = problems(tmp_path, SCENARIO.replace("entry: web", "entry: worker"))
    assert found == ['target.entry (line 4): service "worker" (docker-compose.yml line 11) '
                     'publishes no port; traffic reaches the entry through a port it publishes '
                     'on the host, e.g. ports: ["127.0.0.1::8000"]']


@pytest.mark.parametrize(("compose", "needle"), [
    ("services:\n  web:\n    image: [x\n", "line 4, column 1: YAML syntax error"),
    ("- just\n- a list\n", "line 1: not a compose file: the top level must be a mapping"),
    ("version: '2.4'\nvolumes: {}\n", "line 1: not a compose file: it has no `services:`"),
    ("services:\n  web: nginx\n", "line 2: services.web: must be a mapping"),
    ("services:\n  web:\n    ports: [\"80:abc\"]\n",
     "line 3: services.web.ports[0]: cannot read a container port from 'abc'"),
    ("services:\n  web:\n    ports: [80]\n    mem_limit: lots\n",
     "line 4: services.web: memory limit must be a size such as 256m or 1g, got 'lots'"),
])
def test_bad_compose_files_name_file_and_line(tmp_path: Path, compose: str, needle: str) -> None:
    found = problems(tmp_path, compose=compose)
    assert len(found) == 1, found
    assert found[0].startswith("target.compose (line 3): ")
    assert f"{tmp_path / 'stack' / 'docker-compose.yml'} {needle}" in found[0]


def test_missing_compose_file(tmp_path: Path) -> None:
    found = problems(tmp_path, SCENARIO.replace("stack/docker-compose.yml", "nope.yml"))
    assert found == [f"target.compose (line 3): file not found: {tmp_path / 'nope.yml'}"]


def test_overrides_are_limited_to_what_the_file_cannot_say(tmp_path: Path) -> None:
    text = SCENARIO.replace("  entry: web\n", """\
  entry: web
  services:
    web: {command: "python app.py", replicas: 2}
    wbe: {cpu: 1}
""")
    found = problems(tmp_path, text)
    assert len(found) == 2
    assert found[0].startswith("target.services.web.command (line 6): set in the compose file")
    assert found[1].startswith("target.services.web.replicas (line 6): set in the compose")
    found = problems(tmp_path, text.replace('command: "python app.py", replicas: 2', "cpu: 1"))
    assert len(found) == 1 and found[0].startswith(
        "target.services.wbe (line 7): names no service of ")
    assert 'did you mean "web"?' in found[0]


def test_compose_runs_on_docker_only(tmp_path: Path) -> None:
    found = problems(tmp_path, SCENARIO.replace("target:\n", "target:\n  runtime: local\n"))
    assert found == ["target.runtime (line 3): a compose target runs on the docker runtime "
                     "(leave runtime out or set it to docker)"]
    with pytest.raises(InputError, match="--runtime local cannot run it"):
        load(tmp_path).with_overrides(runtime="local")


def test_compose_reader_error_type(tmp_path: Path) -> None:
    with pytest.raises(ComposeFileError, match="cannot read the file"):
        read_compose_file(tmp_path / "absent.yml")


LOCAL = """\
name: own-venv
target:
  services:
    app:
      venv: venvs/app
      command: "{python} -m app"
traffic: {users: 1, duration: 2s}
requests: [{name: home, path: /}]
"""


def test_venv_resolves_relative_to_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "venvs" / "app" / "bin").mkdir(parents=True)
    (tmp_path / "venvs" / "app" / "bin" / "python").write_text("", encoding="utf-8")
    path = tmp_path / "s.yaml"
    path.write_text(LOCAL, encoding="utf-8")
    svc = load_scenario(path, env={}).target.services["app"]
    assert svc.venv == tmp_path / "venvs" / "app"
    assert svc.interpreter == tmp_path / "venvs" / "app" / "bin" / "python"


def test_missing_venv_says_how_to_create_it(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(LOCAL, encoding="utf-8")
    with pytest.raises(ScenarioInvalid) as caught:
        load_scenario(path, env={})
    venv = tmp_path / "venvs" / "app"
    assert caught.value.problems == [
        f"target.services.app.venv (line 5): {venv} does not exist; create it with "
        f"`python3 -m venv {venv}` and install the service into it (`{venv}/bin/pip install "
        "...`)"]


def test_python_and_venv_rules(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(LOCAL.replace("      venv: venvs/app\n", "      python: ./nope/python3\n")
                    + "", encoding="utf-8")
    with pytest.raises(ScenarioInvalid) as caught:
        load_scenario(path, env={})
    assert caught.value.problems[0].startswith(
        f"target.services.app.python (line 5): {tmp_path / 'nope' / 'python3'} does not exist")
    path.write_text(LOCAL.replace("      venv: venvs/app\n      command: \"{python} -m app\"\n",
                                  "      kind: valkey\n      python: python3\n"),
                    encoding="utf-8")
    with pytest.raises(ScenarioInvalid) as caught:
        load_scenario(path, env={})
    assert caught.value.problems == [
        "target.services.app.python (line 6): applies to kind process only (this is valkey)"]


def test_requests_locustfile_spelling_is_the_locustfile(tmp_path: Path) -> None:
    (tmp_path / "lf.py").write_text("", encoding="utf-8")
    path = tmp_path / "s.yaml"
    text = LOCAL.replace("      venv: venvs/app\n", "").replace(
        "requests: [{name: home, path: /}]", "requests: {locustfile: lf.py}")
    path.write_text(text, encoding="utf-8")
    scenario = load_scenario(path, env={})
    assert scenario.locustfile == tmp_path / "lf.py" and scenario.requests == []
    path.write_text(text.replace("lf.py", "missing.py"), encoding="utf-8")
    with pytest.raises(ScenarioInvalid) as caught:
        load_scenario(path, env={})
    assert caught.value.problems == [
        f"requests.locustfile (line 7): file not found: {tmp_path / 'missing.py'}"]
    path.write_text(text.replace("{locustfile: lf.py}", "{locustfile: lf.py, users: 2}"),
                    encoding="utf-8")
    with pytest.raises(ScenarioInvalid) as caught:
        load_scenario(path, env={})
    assert caught.value.problems == ["requests.users (line 7): unknown key: `requests:` as a "
                                     "mapping takes only locustfile (or give a list)"]
