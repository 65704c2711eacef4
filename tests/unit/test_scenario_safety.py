"""Secrets in scenarios never reach artifacts; the loader survives 10 000 hostile documents."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import ScenarioInvalid
from harness.scenario import parse_scenario

SECRET_SCENARIO = """
name: s
target:
  services:
    api:
      command: "x"
      env: {DB_PASSWORD: "${PW}", API_TOKEN: hunter2, PLAIN: visible}
requests:
  - {name: a, path: /, headers: {Authorization: "Bearer ${PW}"}}
profiling: {enabled: true, basic_auth: "u:${PW}"}
"""


def test_secrets_are_redacted_from_the_dump() -> None:
    scenario = parse_scenario(textwrap.dedent(SECRET_SCENARIO), Path("s.yaml"),
                              {"PW": "s3cr3t-value"})
    text = json.dumps(scenario.dump())
    assert "s3cr3t-value" not in text and "hunter2" not in text
    assert "visible" in text


KEYS = ["name", "target", "services", "api", "command", "traffic", "model", "users", "rate",
        "requests", "path", "method", "faults", "kind", "start", "duration", "params", "range",
        "choice", "replicas", "env", "pricing", "overrides", "variants", "stages", "weight",
        "warmup", "health", "depends_on", "memory", "cpu", "tenant", "body", "x", "ünïcödé"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True), st.text(max_size=12),
                    st.sampled_from(["30s", "1m", "-5s", "512Mi", "${X}", "${X:-1}", "open",
                                     "closed", "/p/{id}", "GET", "kill", "downstream"]))
DOCS = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)), max_leaves=25)


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(DOCS)
def test_any_document_gives_a_scenario_or_clean_problems(doc: object) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True)
    try:
        parse_scenario(text, Path("fuzz.yaml"), {})
    except ScenarioInvalid as exc:
        assert exc.problems
        for problem in exc.problems:
            assert "Traceback" not in problem and "pydantic" not in problem
            assert "(line " in problem or problem.startswith("the file is empty")
