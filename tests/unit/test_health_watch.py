"""HealthWatch: what counts as ready, when a steady 4xx fails fast, what a timeout says; and
the environment of a service under its own interpreter (isolated_env)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness.stack.health import STEADY_S, Answer, HealthWatch
from harness.stack.interpreter import isolated_env, venv_of

NOT_FOUND = Answer(404, "Not Found", b"<h1>no such page</h1>\n")


def feed(watch: HealthWatch, answers: list[Answer | None], step: float) -> str | None:
    steady = None
    for i, answer in enumerate(answers):
        assert not watch.ok(answer, i * step)
        steady = watch.steady_error(i * step)
    return steady


def test_a_steady_404_fails_fast_naming_status_and_body() -> None:
    watch = HealthWatch("/health")
    assert feed(watch, [NOT_FOUND] * 3, 0.5) is None  # 1 s: not yet steady
    assert not watch.ok(NOT_FOUND, STEADY_S)
    message = watch.steady_error(STEADY_S)
    assert message is not None
    assert message.startswith('answered GET /health with 404 Not Found: "<h1>no such page</h1>"'
                              " on 4 probes in a row over 2.0 s")


@pytest.mark.parametrize("status", [500, 503, 429, 408])
def test_server_errors_and_transient_4xx_keep_waiting(status: int) -> None:
    watch = HealthWatch("/health")
    assert feed(watch, [Answer(status, "x", b"warming up")] * 30, 0.5) is None
    assert watch.what(8080) == ('GET /health on port 8080 did not return 2xx; last answer '
                                f'{status} x: "warming up"')


def test_a_refused_connection_or_a_changing_status_restarts_the_streak() -> None:
    watch = HealthWatch("/health")
    answers = [NOT_FOUND, NOT_FOUND, None, NOT_FOUND, Answer(403, "Forbidden", b""), NOT_FOUND]
    assert feed(watch, answers, 1.0) is None
    assert watch.what(1) == 'GET /health on port 1 did not return 2xx; last answer 404 Not ' \
                            'Found: "<h1>no such page</h1>"'


def test_ready_on_2xx_or_any_answer_without_a_path() -> None:
    assert HealthWatch("/health").ok(Answer(204, "No Content", b""), 0.0)
    assert HealthWatch(None).ok(NOT_FOUND, 0.0)
    assert not HealthWatch(None).ok(None, 0.0)
    assert HealthWatch(None).what(9, inside=True) == "no HTTP answer on its port 9"
    assert HealthWatch("/h").what(9) == "GET /h on port 9 did not return 2xx; nothing answered HTTP"


def test_isolated_env_drops_the_harness_venv_and_leads_with_theirs(tmp_path: Path) -> None:
    venv = tmp_path / "v"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    own_bin = str(Path(sys.executable).parent)
    base = {"PATH": os.pathsep.join([own_bin, "/usr/local/bin", "/usr/bin"]),
            "VIRTUAL_ENV": str(Path(sys.executable).parent.parent), "PYTHONPATH": "/work/x",
            "PYTHONHOME": "/x", "HOME": "/root"}
    env = isolated_env(base, venv / "bin" / "python", venv)
    assert env["PATH"].split(os.pathsep) == [str(venv / "bin"), "/usr/local/bin", "/usr/bin"]
    assert env["VIRTUAL_ENV"] == str(venv) and env["HOME"] == "/root"
    assert "PYTHONPATH" not in env and "PYTHONHOME" not in env
    assert venv_of(venv / "bin" / "python") == venv
    plain = isolated_env(base, Path("/usr/bin/python3"))
    assert plain["PATH"].split(os.pathsep)[0] == "/usr/bin" and "VIRTUAL_ENV" not in plain
