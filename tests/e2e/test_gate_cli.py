"""The gate through the CLI on real short runs of the sample target: A/A passes, a variant that
burns 30 % more CPU on GET /cpu fails naming it, JUnit/Markdown/JSON outputs, baselines,
compare, and the exit codes of bad input and of a failed candidate run."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml

from tests.conftest import leftover_processes, run_cli

SCENARIO = """
name: gate-e2e
target:
  services:
    api:
      command: "{{python}} -m targets.sample"
      startup_timeout: 20s
      cpu: 1
      billing: usage
      env:
        SAMPLE_CPU_FACTOR: "{factor}"
traffic:
  model: open
  rate: 30
  warmup: 1s
  duration: 6s
requests:
  - name: GET /cpu
    path: /cpu?ms=20
    weight: 2
  - name: GET /cheap
    path: /cheap
    weight: 3
gate:
  budgets:
    - metric: cost_per_call
      endpoint: "*"
      warn: +5%
      fail: +10%
    - metric: error_rate
      fail: 5%
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Two runs of the same code and one whose GET /cpu burns 30 % more CPU."""
    root = tmp_path_factory.mktemp("gate-runs")
    out: dict[str, Path] = {}
    try:
        for name, factor in (("a1", 1.0), ("a2", 1.0), ("slow", 1.3)):
            scenario = root / f"{name}.yaml"
            scenario.write_text(textwrap.dedent(SCENARIO.format(factor=factor)), encoding="utf-8")
            out[name] = root / name
            done = run_cli("run", scenario, "--output", out[name])
            assert done.returncode == 0, done.stderr
        yield out
    finally:
        for run_dir in out.values():
            assert not leftover_processes(run_dir)


def test_same_code_twice_passes(runs: dict[str, Path], tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    done = run_cli("gate", "--baseline", runs["a1"], "--candidate", runs["a2"],
                   "--junit", junit, "--json", tmp_path / "gate.json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Cost gate passed" in done.stdout and "Traceback" not in done.stderr
    suite = next(iter(JUnitXml.fromfile(str(junit))))
    assert suite.tests == 3 and suite.failures == 0 and suite.errors == 0
    data = json.loads((tmp_path / "gate.json").read_text())
    assert data["exit_code"] == 0 and {c["label"] for c in data["checks"]} == {
        "cost_per_call[GET /cpu]", "cost_per_call[GET /cheap]", "error_rate"}


def test_a_cpu_regression_fails_and_names_the_endpoint(runs: dict[str, Path],
                                                       tmp_path: Path) -> None:  # fmt: skip
    summary = tmp_path / "step-summary.md"
    junit, markdown = tmp_path / "junit.xml", tmp_path / "gate.md"
    done = run_cli("gate", "--baseline", runs["a1"], "--candidate", runs["slow"],
                   "--junit", junit, "--markdown", markdown,
                   env={"GITHUB_STEP_SUMMARY": str(summary)})  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    failing = [line for line in done.stdout.splitlines() if line.startswith("- **")]
    assert len(failing) == 1 and "on GET /cpu ❌" in failing[0] and "(95 % CI +" in failing[0]
    cases = {case.name: case for suite in JUnitXml.fromfile(str(junit)) for case in suite}
    assert isinstance(cases["cost_per_call[GET /cpu]"].result[0], Failure)
    assert cases["cost_per_call[GET /cheap]"].is_passed
    assert summary.read_text(encoding="utf-8") == markdown.read_text(encoding="utf-8") + "\n"


def test_named_baseline_and_compare(runs: dict[str, Path], tmp_path: Path) -> None:
    store = tmp_path / "baselines"
    saved = run_cli("baseline", "save", "main", runs["a1"], "--dir", store)
    assert saved.returncode == 0 and "baseline main" in saved.stdout, saved.stderr
    assert sum(f.stat().st_size for f in (store / "main").iterdir()) < 30_000
    listed = run_cli("baseline", "list", "--dir", store)
    assert listed.returncode == 0 and listed.stdout.startswith("main ")
    gated = run_cli("gate", "--baseline", "main", "--baselines", store,
                    "--candidate", runs["slow"])  # fmt: skip
    assert gated.returncode == 1 and "on GET /cpu ❌" in gated.stdout, gated.stderr
    output = tmp_path / "cmp" / "compare.html"
    compared = run_cli("compare", runs["a1"], runs["slow"], "--output", output)
    assert compared.returncode == 0, compared.stderr
    assert "| GET /cpu |" in compared.stdout and "🔺" in compared.stdout
    data = json.loads(output.with_suffix(".json").read_text())
    cpu = next(r for r in data["comparisons"][0]["rows"]
               if r["name"] == "GET /cpu" and r["metric"] == "cost_per_call")  # fmt: skip
    assert cpu["verdict"] == "worse" and cpu["rel_ci"][0] > 0.1
    assert "<html" in output.read_text() and output.with_suffix(".md").is_file()


def test_bad_input_exits_2_and_a_failed_candidate_exits_3(runs: dict[str, Path],
                                                          tmp_path: Path) -> None:  # fmt: skip
    bad = run_cli("gate", "--baseline", runs["a1"], "--candidate", runs["a2"],
                  "--budget", "cost_per_call:10%")  # fmt: skip
    assert bad.returncode == 2 and "needs a sign" in bad.stderr and "Traceback" not in bad.stderr
    missing = run_cli("gate", "--baseline", tmp_path / "nope", "--candidate", runs["a2"])
    assert missing.returncode == 2 and "no such run directory" in missing.stderr
    failed = tmp_path / "failed"
    shutil.copytree(runs["a2"], failed)
    manifest = json.loads((failed / "manifest.json").read_text())
    manifest.update(status="failed", error="target crashed")
    (failed / "manifest.json").write_text(json.dumps(manifest))
    crashed = run_cli("gate", "--baseline", runs["a1"], "--candidate", failed)
    assert crashed.returncode == 3 and "status failed" in crashed.stderr
