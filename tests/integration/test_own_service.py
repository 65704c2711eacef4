"""The user's own service on the local runtime, with real processes on 127.0.0.1:

* ``venv:`` — a throwaway venv made with ``python -m venv``: the child runs under it and sees
  none of the harness's packages, PATH or PYTHONPATH;
* a third-party locustfile (``HttpUser`` and ``FastHttpUser``, tasks, ``wait_time``) runs as
  is against the entry, and every request the target served is recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, run_cli

TINY = ROOT / "tests" / "fixtures" / "tiny_server.py"


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second venv, without pip (fast), made from the harness's own interpreter."""
    venv = tmp_path_factory.mktemp("venvs") / "other"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   env=env, timeout=120)
    return venv


def test_a_venv_service_runs_under_its_venv_only(tmp_path: Path, bare_venv: Path) -> None:
    report = tmp_path / "whoami.json"
    scenario = tmp_path / "venv.yaml"
    scenario.write_text(f"""
name: venv
target:
  services:
    app:
      venv: {bare_venv}
      command: "{{python}} {TINY} {{port}} whoami {report}"
      env: {{APP_FLAG: "1"}}
traffic: {{users: 1, duration: 1s}}
requests: [{{name: health, path: /health}}]
""", encoding="utf-8")
    run_dir = tmp_path / "run"
    done = run_cli("run", scenario, "--output", run_dir,
                   env={"PYTHONPATH": str(ROOT)})  # the harness's own import path
    assert done.returncode == 0, done.stderr
    seen = json.loads(report.read_text(encoding="utf-8"))
    assert Path(seen["prefix"]) == bare_venv
    assert Path(seen["executable"]).parent == bare_venv / "bin"
    assert seen["VIRTUAL_ENV"] == str(bare_venv) and seen["PYTHONPATH"] is None
    path = seen["PATH"].split(os.pathsep)
    assert path[0] == str(bare_venv / "bin")
    assert str(Path(sys.executable).parent) not in path  # the harness's venv is not on PATH
    assert seen["imports"] == {"harness": False, "gevent": False, "locust": False,
                               "pandas": False}
    assert not any(str(ROOT) == p or "site-packages" in p and sys.prefix in p
                   for p in seen["sys_path"])


LOCUSTFILE = """
from locust import {base}, between, task


class Visitor({base}):
    host = "http://example.invalid"   # replaced by the entry: traffic stays on 127.0.0.1
    wait_time = between(0.005, 0.02)

    @task(3)
    def home(self):
        self.client.get("/home")

    @task
    def item(self):
        self.client.get("/items/7", name="/items/[id]")
"""


@pytest.mark.parametrize("base", ["HttpUser", "FastHttpUser"])
def test_a_third_party_locustfile_runs_as_is_and_every_request_is_recorded(
        tmp_path: Path, base: str) -> None:
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE.format(base=base), encoding="utf-8")
    count = tmp_path / "count.txt"
    scenario = tmp_path / "lf.yaml"
    scenario.write_text(f"""
name: lf
target:
  services:
    app:
      command: "{{python}} {TINY} {{port}} count {count}"
traffic: {{users: 3, duration: 3s}}
requests: {{locustfile: locustfile.py}}
""", encoding="utf-8")
    run_dir = tmp_path / "run"
    done = run_cli("run", scenario, "--output", run_dir)
    assert done.returncode == 0, done.stderr
    frame = pd.read_parquet(run_dir / "requests.parquet")
    served = int(count.read_text(encoding="utf-8"))
    assert served > 50
    assert len(frame) == served  # every request the target served, recorded exactly once
    assert set(frame["endpoint"]) == {"/home", "/items/[id]"}
    assert set(frame["status"]) == {200}


@pytest.mark.slow
def test_httpbin_example_in_its_own_venv(tmp_path: Path) -> None:
    """The worked example: targets/httpbin/setup-venv.sh, then scenarios/httpbin.yaml."""
    setup = subprocess.run(["bash", str(ROOT / "targets" / "httpbin" / "setup-venv.sh")],
                           capture_output=True, text=True, timeout=600, check=False)
    assert setup.returncode == 0, setup.stderr
    run_dir = tmp_path / "run"
    done = run_cli("run", ROOT / "scenarios" / "httpbin.yaml", "--duration", "45", "--output",
                   run_dir)
    assert done.returncode == 0, done.stderr
    frame = pd.read_parquet(run_dir / "requests.parquet")
    assert {"GET /bytes/{n}", "GET /gzip", "GET /uuid"} <= set(frame["endpoint"])
    assert (frame["status"] == 200).all()
    # priced per endpoint black-box: httpbin sends nothing, its CPU per call is fitted
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [fit["usable"] for fit in summary["blackbox"]] == [True], summary["blackbox"]
    endpoints = {e["name"]: e for e in summary["endpoints"]}
    assert {e["cpu_ms_source"] for e in endpoints.values()} == {"regression"}
    ledger = pd.read_parquet(run_dir / "ledger.parquet")
    assert set(ledger[ledger["x_CostCategory"] == "compute"]["x_AttributionBasis"]) \
        == {"regression"}
    # random bytes are generated in Python: the costliest endpoint, well inside its interval
    heavy = endpoints["GET /bytes/{n}"]
    assert heavy["cpu_ms_per_call"] == max(e["cpu_ms_per_call"] for e in endpoints.values())
    assert heavy["cpu_ms_ci95"][0] > 0
