"""The CLI on the user's own system: health checks that say what they got, and bad input
(compose file, entry, venv) as one clear message with exit 2 and nothing started."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT, leftover_processes, run_cli

TINY = ROOT / "tests" / "fixtures" / "tiny_server.py"
Writer = Callable[..., Path]

HEALTH = f"""
name: health
target:
  services:
    app:
      command: "{{python}} {TINY} {{port}} MODE"
      health: /health
      startup_timeout: TIMEOUT
traffic: {{users: 1, duration: 2s}}
requests: [{{name: home, path: /}}]
"""


def test_a_health_path_answering_404_fails_fast_naming_it(scenario_file: Writer,
                                                           run_dir: Path) -> None:
    path = scenario_file(HEALTH.replace("MODE", "404").replace("TIMEOUT", "60s"))
    started = time.monotonic()
    done = run_cli("run", path, "--output", run_dir)
    took = time.monotonic() - started
    assert done.returncode == 3, done.stderr
    assert took < 30, f"took {took:.1f} s: the 60 s startup timeout was waited out"
    assert ('answered GET /health with 404 Not Found: "no such page" on' in done.stderr)
    assert "does not go away by waiting" in done.stderr and "Traceback" not in done.stderr


def test_a_health_path_answering_503_waits_the_timeout_and_names_the_answer(
        scenario_file: Writer, run_dir: Path) -> None:
    path = scenario_file(HEALTH.replace("MODE", "503").replace("TIMEOUT", "3s"))
    done = run_cli("run", path, "--output", run_dir)
    assert done.returncode == 3, done.stderr
    assert "was not healthy after 3 s (GET /health on port " in done.stderr
    assert ('did not return 2xx; last answer 503 Service Unavailable: "warming up"; '
            "`startup_timeout` sets how long to wait)") in done.stderr


GOOD_COMPOSE = """\
version: "2.4"
services:
  web:
    image: cost-harness/python:3.11
    ports: ["127.0.0.1::8000"]
  worker:
    image: cost-harness/python:3.11
"""

COMPOSE_SCENARIO = """\
name: own
target:
  compose: stack/docker-compose.yml
  entry: ENTRY
traffic: {users: 1, duration: 2s}
requests: [{name: home, path: /}]
"""


@pytest.mark.parametrize(("compose", "entry", "needles"), [
    ("services:\n  web: {image: x\n", "web",
     ["target.compose (line 3): ", "stack/docker-compose.yml line 3, column 1: YAML syntax "
      "error"]),
    ("[1, 2]\n", "web", ["target.compose (line 3): ", "stack/docker-compose.yml line 1: not a "
                         "compose file: the top level must be a mapping"]),
    ("version: '2.4'\n", "web", ["stack/docker-compose.yml line 1: not a compose file: it has "
                                 "no `services:` mapping"]),
    (GOOD_COMPOSE, "webb", ["target.entry (line 4): names no service of ",
                            "(known: web, worker); did you mean \"web\"?"]),
    (GOOD_COMPOSE, "worker", ['target.entry (line 4): service "worker" (docker-compose.yml '
                              "line 6) publishes no port"]),
    (None, "web", ["target.compose (line 3): file not found: ", "stack/docker-compose.yml"]),
])
def test_bad_compose_input_exits_2_and_starts_nothing(
        tmp_path: Path, compose: str | None, entry: str, needles: list[str]) -> None:
    if compose is not None:
        (tmp_path / "stack").mkdir()
        (tmp_path / "stack" / "docker-compose.yml").write_text(compose, encoding="utf-8")
    scenario = tmp_path / "own.yaml"
    scenario.write_text(COMPOSE_SCENARIO.replace("ENTRY", entry), encoding="utf-8")
    run_dir = tmp_path / "run"
    done = run_cli("run", scenario, "--output", run_dir)
    assert done.returncode == 2, done.stderr
    assert f"{scenario}: 1 problem(s)" in done.stderr
    for needle in needles:
        assert needle in done.stderr
    assert "Traceback" not in done.stderr
    assert not run_dir.exists()  # validation fails before anything starts
    assert leftover_processes(run_dir) == []


def test_a_missing_venv_exits_2_with_the_command_to_create_it(tmp_path: Path) -> None:
    scenario = tmp_path / "venv.yaml"
    scenario.write_text("""\
name: venv
target:
  services:
    app:
      venv: ../.venvs/nope
      command: "{python} -m app"
traffic: {users: 1, duration: 2s}
requests: [{name: home, path: /}]
""", encoding="utf-8")
    run_dir = tmp_path / "run"
    done = run_cli("run", scenario, "--output", run_dir)
    venv = tmp_path.parent / ".venvs" / "nope"
    assert done.returncode == 2, done.stderr
    assert (f"target.services.app.venv (line 5): {venv} does not exist; create it with "
            f"`python3 -m venv {venv}`") in done.stderr
    assert "Traceback" not in done.stderr and not run_dir.exists()
