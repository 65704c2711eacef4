"""The gate: budget syntax and validation, verdict logic on synthetic windows, outputs."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from gate_factory import sample_run, windows
from junitparser import Error, Failure, JUnitXml, Skipped

from harness.compare import SideInfo
from harness.compare.baselines import BaselineError
from harness.compare.stats import Contrast, Side, pool
from harness.compare.windows import Pricing
from harness.errors import EXIT_GATE_FAILED, EXIT_INPUT, EXIT_OK, ScenarioInvalid
from harness.gate import (
    CandidateFailed,
    Check,
    GateResult,
    Margin,
    decide,
    evaluate,
    gate_run,
    margin,
)
from harness.gate.output import GateOutputs, gate_json, gate_junit, gate_markdown, publish
from harness.scenario.budgets import (
    DEFAULT_BUDGETS,
    Budget,
    BudgetError,
    GateSpec,
    Threshold,
    effective_budgets,
    load_gate_spec,
    parse_cli_budget,
    parse_threshold,
    spec_from_mapping,
)

BASE = {"GET /cpu": (2e-7, 20.0), "GET /cheap": (1e-8, 2.0), "POST /checkout": (5e-6, 50.0)}
PRICING = Pricing("opencost-default", "usage", "USD")
CANDIDATE = SideInfo("cand <b>", "/tmp/cand", "run", "shop", ("r1",), ("completed",), 900, 30, 30.0)


# --- budget syntax -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "metric", "kind", "value"),
    [
        ("+10%", "cost_per_call", "relative", 0.10),
        ("+$0.000001", "cost_per_call", "delta", 1e-6),
        ("$0.00002", "cost_per_call", "limit", 2e-5),
        ("2e-05", "cost_per_call", "limit", 2e-5),
        ("+20ms", "p95_ms", "delta", 20.0),
        ("1.5s", "p99_ms", "limit", 1500.0),
        ("1%", "error_rate", "limit", 0.01),
        ("+1pp", "error_rate", "delta", 0.01),
        ("-10%", "throughput", "relative", -0.10),
        ("30rps", "throughput", "limit", 30.0),
    ],
)
def test_levels_parse_to_base_units(text: str, metric: str, kind: str, value: float) -> None:
    level = parse_threshold(text, metric)
    assert level.kind == kind and level.value == pytest.approx(value) and level.text == text


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("cost_per_call:10%", "needs a sign"),
        ("throughput:+5%", "limit a drop"),
        ("cost_per_call:-5%", "limit an increase"),
        ("p95_ms:+5rps", "does not apply"),
        ("p95_ms:$5", "$ amount"),
        ("p95_ms[category=egress]:+5%", "cost metrics only"),
        ("cost_per_call:warn=+20%,fail=+10%", "beyond the fail level"),
        ("cost_per_call[category=disk]:+5%", 'one of "compute"'),
        ("latency:+5%", "metric: must be one of"),
        ("cost_per_call", "METRIC[SCOPE]:LEVELS"),
        ("cost_per_call:warn=+5%,oops=+1%", "levels are FAIL or warn=W,fail=F"),
    ],
)
def test_bad_cli_budgets_name_the_problem(text: str, needle: str) -> None:
    with pytest.raises(BudgetError) as info:
        parse_cli_budget(text)
    assert needle in str(info.value) and text in str(info.value)


def test_cli_scopes() -> None:
    assert parse_cli_budget("cost_per_call:+10%").label == "cost_per_call"
    every = parse_cli_budget("p95_ms[*]:warn=+10%,fail=+25%")
    assert every.endpoint == "*" and every.level("warn") == Threshold("relative", 0.1, "+10%")
    named = parse_cli_budget("cost_per_call[POST /a:b]:+5%")
    assert named.endpoint == "POST /a:b"
    assert parse_cli_budget("cost_per_call[category=egress]:+5%").category == "egress"


def test_scenario_gate_block_reports_field_and_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent("""\
        name: x
        gate:
          confidence: 0.9
          budgets:
            - metric: cost_per_call
              fail: 10%
            - metric: p95_ms
              endpoint: GET /a
              wran: +5%
        """), encoding="utf-8")  # fmt: skip
    with pytest.raises(ScenarioInvalid) as info:
        load_gate_spec(path)
    problems = info.value.problems
    assert any(p.startswith("gate.budgets[0].fail (line 6)") and "needs a sign" in p
               for p in problems), problems  # fmt: skip
    assert any(p.startswith("gate.budgets[1].wran (line 9)") and '"warn"' in p for p in problems)


def test_spec_round_trips_through_json_and_merges_cli_budgets() -> None:
    spec = GateSpec(budgets=[Budget(metric="cost_per_call", warn="+5%", fail="+10%"),
                             Budget(metric="p95_ms", endpoint="*", fail="+25ms")])  # fmt: skip
    again = spec_from_mapping(json.loads(json.dumps(spec.model_dump(mode="json"))), "manifest")
    assert again.budgets[1].level("fail") == Threshold("delta", 25.0, "+25ms")
    cli = parse_cli_budget("cost_per_call:+20%")
    merged = effective_budgets(again, [cli])
    assert [b.label for b in merged] == ["cost_per_call", "p95_ms[*]"]
    assert merged[0].level("fail") == cli.level("fail") and merged[0].level("warn") is None
    assert effective_budgets(GateSpec(), []) == list(DEFAULT_BUDGETS)
    with pytest.raises(ScenarioInvalid, match=r"gate\.budgets\[0\]\.fail: .*limit a drop"):
        spec_from_mapping({"budgets": [{"metric": "throughput", "fail": "+5%"}]}, "manifest")


# --- verdicts ----------------------------------------------------------------------------


def _margin(point: float, lo: float, hi: float, text: str = "+10%") -> Margin:
    return Margin(Threshold("relative", 0.1, text), point, (lo, hi))


@pytest.mark.parametrize(
    ("fail", "warn", "verdict"),
    [
        (_margin(0.05, 0.01, 0.09), None, "fail"),  # the whole CI is over the fail level
        (_margin(0.05, -0.01, 0.09), None, "inconclusive"),  # the CI contains it
        (_margin(-0.05, -0.08, 0.01), None, "inconclusive"),  # estimate under, CI over
        (_margin(-0.05, -0.09, -0.01), _margin(0.01, -0.02, 0.03, "+5%"), "warn"),
        (_margin(-0.05, -0.09, -0.01), _margin(-0.01, -0.02, 0.0, "+5%"), "pass"),
        (Margin(Threshold("relative", 0.1, "+10%"), 0.02, None), None, "inconclusive"),
        (None, _margin(0.02, -1, 1, "+5%"), "warn"),
    ],
)
def test_decide(fail: Margin | None, warn: Margin | None, verdict: str) -> None:
    assert decide(fail, warn, 0.95)[0] == verdict


def _contrast(base_cost: dict[str, tuple[float, float]], new_cost: dict[str, tuple[float, float]],
              noise: float = 0.05, n: int = 30, **kw: float) -> Contrast:  # fmt: skip
    base = Side(pool([windows("a", base_cost, n=n, noise=noise, seed=1, **kw)]), seed=0)
    new = Side(pool([windows("b", new_cost, n=n, noise=noise, seed=2, **kw)]), seed=1)
    return Contrast(base, new, 0.95)


def _result(checks: list[Check], strict: bool = False) -> GateResult:
    return GateResult(tuple(checks), None, CANDIDATE, PRICING, 0.95, strict, ())


def test_aa_passes_and_a_real_regression_fails_naming_the_endpoint() -> None:
    budgets = [parse_cli_budget("cost_per_call:warn=+5%,fail=+10%"),
               parse_cli_budget("cost_per_call[*]:warn=+5%,fail=+10%")]  # fmt: skip
    same = evaluate(budgets, _contrast(BASE, BASE))
    assert [c.verdict for c in same] == ["pass"] * 4
    slower = dict(BASE, **{"POST /checkout": (5e-6 * 1.3, 50.0)})
    checks = evaluate(budgets, _contrast(BASE, slower))
    failed = [c.label for c in checks if c.verdict == "fail"]
    assert "cost_per_call[POST /checkout]" in failed and "cost_per_call[GET /cpu]" not in failed
    est = next(c.estimate for c in checks if c.label == "cost_per_call[POST /checkout]")
    assert est is not None and est.rel_ci is not None
    assert est.rel_ci[0] < 0.3 < est.rel_ci[1] and est.rel == pytest.approx(0.3, abs=0.05)


def test_noisy_run_is_inconclusive_not_failed() -> None:
    worse = {k: (c * 1.12, lat) for k, (c, lat) in BASE.items()}
    checks = evaluate([parse_cli_budget("cost_per_call[GET /cpu]:+10%")],
                      _contrast(BASE, worse, noise=0.6, n=8))  # fmt: skip
    assert checks[0].verdict == "inconclusive"
    est = checks[0].estimate
    assert est is not None and est.rel_ci is not None and est.rel_ci[0] < 0.1 < est.rel_ci[1]


def test_warn_when_the_estimate_passes_the_warn_level_only() -> None:
    worse = {k: (c * 1.07, lat) for k, (c, lat) in BASE.items()}
    checks = evaluate([parse_cli_budget("cost_per_call:warn=+5%,fail=+20%")],
                      _contrast(BASE, worse, noise=0.01))  # fmt: skip
    assert checks[0].verdict == "warn"


def test_throughput_latency_error_rate_and_limits() -> None:
    contrast = _contrast(BASE, BASE, rate=20.0)
    slow = {k: (c, lat * 2) for k, (c, lat) in BASE.items()}
    budgets = ["throughput:-10%", "p95_ms:+25%", "error_rate:1%", "cost_per_call:$0.000001",
               "p50_ms[GET /cpu]:+5ms", "error_rate:+1pp"]  # fmt: skip
    verdicts = {c.label: c.verdict for c in evaluate(
        [parse_cli_budget(b) for b in budgets], _contrast(BASE, slow, errors=0.0))}  # fmt: skip
    assert verdicts == {"throughput": "pass", "p95_ms": "fail", "error_rate": "pass",
                        "cost_per_call": "fail", "p50_ms[GET /cpu]": "fail"}  # fmt: skip
    fewer = Side(pool([windows("b", BASE, rate=14.0, seed=5)]), seed=1)
    drop = evaluate([parse_cli_budget("throughput:-10%")], Contrast(contrast.base, fewer, 0.95))
    assert drop[0].verdict == "fail"


def test_margin_reads_lower_is_worse_metrics_downwards() -> None:
    from harness.compare.stats import OVERALL, Estimate

    est = Estimate("throughput", OVERALL, 40.0, 30.0, (29.0, 31.0), -10.0, (-11.0, -9.0),
                   -0.25, (-0.27, -0.22))  # fmt: skip
    found = margin(Threshold("relative", -0.1, "-10%"), est)
    assert found is not None and found.point == pytest.approx(0.15)
    assert found.ci == pytest.approx((0.12, 0.17))
    floor = margin(Threshold("limit", 35.0, "35rps"), est)
    assert floor is not None and floor.ci == pytest.approx((4.0, 6.0))


def test_errors_missing_endpoint_and_no_baseline() -> None:
    checks = evaluate([parse_cli_budget("cost_per_call[GET /cpux]:+5%")], _contrast(BASE, BASE))
    assert checks[0].verdict == "error" and 'did you mean "GET /cpu"' in checks[0].reason
    alone = Contrast(None, Side(pool([windows("b", BASE)]), seed=1), 0.95)
    checks = evaluate([parse_cli_budget("cost_per_call:+5%"),
                       parse_cli_budget("cost_per_call[*]:$0.001")], alone)  # fmt: skip
    assert checks[0].verdict == "error" and "needs a baseline" in checks[0].reason
    assert [c.verdict for c in checks[1:]] == ["pass"] * 3


def test_exit_codes() -> None:
    budgets = [parse_cli_budget("cost_per_call[*]:+10%")]
    passing = evaluate(budgets, _contrast(BASE, BASE))
    assert _result(passing).exit_code == EXIT_OK
    worse = dict(BASE, **{"GET /cpu": (2e-7 * 1.12, 20.0)})
    noisy = evaluate(budgets, _contrast(BASE, worse, noise=0.6, n=8))
    assert "inconclusive" in {c.verdict for c in noisy}
    assert _result(noisy).exit_code == EXIT_OK
    assert _result(noisy, strict=True).exit_code == EXIT_GATE_FAILED
    broken = evaluate([parse_cli_budget("cost_per_call[nope]:+1%")], _contrast(BASE, BASE))
    assert _result(passing + broken).exit_code == EXIT_INPUT
    failing = evaluate(budgets, _contrast(BASE, dict(BASE, **{"GET /cpu": (4e-7, 20.0)})))
    assert _result(failing + broken).exit_code == EXIT_GATE_FAILED
    assert _result([]).exit_code == EXIT_INPUT  # no budget applied to these runs
    assert "no budget applied" in gate_markdown(_result([]))


# --- outputs -----------------------------------------------------------------------------

NASTY = "GET /a|b <script>alert(1)</script> \x01"


def _failing_result() -> GateResult:
    base = dict(BASE, **{NASTY: (1e-7, 5.0)})
    new = dict(base, **{NASTY: (2e-7, 5.0)})
    budgets = [parse_cli_budget("cost_per_call[*]:warn=+5%,fail=+10%"),
               parse_cli_budget("cost_per_call[missing]:+5%")]  # fmt: skip
    return _result(evaluate(budgets, _contrast(base, new)))


def test_junit_is_parsed_by_a_junit_parser(tmp_path: Path) -> None:
    result = _failing_result()
    path = tmp_path / "junit.xml"
    path.write_text(gate_junit(result), encoding="utf-8")
    xml = JUnitXml.fromfile(str(path))
    cases = {case.name: case for suite in xml for case in suite}
    assert len(cases) == len(result.checks) == 5
    bad = next(name for name in cases if name.startswith("cost_per_call[GET /a|b <script>"))
    assert "\x01" not in bad
    failure = cases[bad].result[0]
    assert isinstance(failure, Failure)
    assert re.search(r"Cost per call \+\d+ % \(95 % CI", failure.message)
    assert "<script>alert(1)</script>" in failure.message  # XML-escaped in the file, intact here
    assert isinstance(cases["cost_per_call[missing]"].result[0], Error)
    assert cases["cost_per_call[GET /cpu]"].is_passed
    suite = next(iter(xml))
    assert (suite.tests, suite.failures, suite.errors) == (5, 1, 1)


def test_junit_marks_inconclusive_as_skipped_or_failed() -> None:
    worse = dict(BASE, **{"GET /cpu": (2e-7 * 1.12, 20.0)})
    checks = evaluate([parse_cli_budget("cost_per_call[GET /cpu]:+10%")],
                      _contrast(BASE, worse, noise=0.6, n=8))  # fmt: skip
    lenient = JUnitXml.fromstring(gate_junit(_result(checks)).split("\n", 1)[1])
    case = next(c for s in lenient for c in s)
    assert isinstance(case.result[0], Skipped)
    strict = JUnitXml.fromstring(gate_junit(_result(checks, strict=True)).split("\n", 1)[1])
    assert isinstance(next(c for s in strict for c in s).result[0], Failure)


def test_markdown_headline_table_and_escaping() -> None:
    text = gate_markdown(_failing_result())
    assert text.startswith("### ❌ Cost gate failed")
    assert "<script>" not in text and "&lt;script&gt;" in text and "a\\|b" in text
    headline = next(line for line in text.splitlines() if line.startswith("- **Cost per call"))
    assert "(95 % CI +" in headline and "❌" in headline and "/a\\|b" in headline
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 5 and all(row.count(" | ") == rows[0].count(" | ") for row in rows)


def test_publish_writes_files_and_the_step_summary(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "step.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = _failing_result()
    outputs = GateOutputs(tmp_path / "o/j.xml", tmp_path / "o/g.md", tmp_path / "o/g.json")
    text = publish(result, outputs)
    assert summary.read_text(encoding="utf-8") == "earlier step\n" + text + "\n"
    data = json.loads((tmp_path / "o/g.json").read_text(encoding="utf-8"))
    assert data["verdict"] == "fail" and data["exit_code"] == 1
    assert data["counts"]["fail"] == 1 and data == gate_json(result)
    assert (tmp_path / "o/g.md").read_text(encoding="utf-8") == text


# --- gate_run on run directories ---------------------------------------------------------


def test_gate_run_takes_budgets_from_the_candidates_manifest(tmp_path: Path) -> None:
    gate = {"budgets": [{"metric": "direct_cost_per_call", "endpoint": "*", "fail": "+10%"}]}
    base, book = sample_run(tmp_path, "base", gate=gate)
    same, _ = sample_run(tmp_path, "same", gate=gate)
    slow, _ = sample_run(tmp_path, "slow", cpu_ms=26.0, gate=gate)
    passed = gate_run(same, base, price_book=book, billing_model="usage")
    assert [c.label for c in passed.checks] == ["direct_cost_per_call[/a]",
                                                "direct_cost_per_call[/b]"]  # fmt: skip
    assert passed.exit_code == EXIT_OK and passed.baseline is not None
    failed = gate_run([slow], [base], price_book=book, billing_model="usage")
    assert {c.label: c.verdict for c in failed.checks} == {
        "direct_cost_per_call[/a]": "fail", "direct_cost_per_call[/b]": "pass"}
    pooled = gate_run([same, slow], [base, same], price_book=book, billing_model="usage")
    assert pooled.candidate.run_ids == ("same", "slow") and pooled.baseline is not None
    assert pooled.baseline.requests == 2 * 63
    cli = [parse_cli_budget("error_rate:50%"), parse_cli_budget("cost_per_call:+5%")]
    alone = gate_run(same, None, GateSpec(), cli, price_book=book)  # limits need no baseline
    assert [c.verdict for c in alone.checks] == ["pass", "error"]
    assert alone.checks[0].estimate is not None
    assert alone.checks[0].estimate.new == pytest.approx(3 / 63)  # 3 errors in 63 calls


def test_gate_run_refuses_failed_runs(tmp_path: Path) -> None:
    base, book = sample_run(tmp_path, "base")
    crashed, _ = sample_run(tmp_path, "crashed", status="failed", error="target crashed")
    with pytest.raises(CandidateFailed, match="status failed") as info:
        gate_run(crashed, base, price_book=book)
    assert info.value.exit_code == 3
    with pytest.raises(BaselineError, match="choose a completed run"):
        gate_run(base, crashed, price_book=book)
    with pytest.raises(ScenarioInvalid, match=r"gate\.budgets\[0\]\.metric"):
        gate_run(base, base, {"budgets": [{"metric": "latency", "fail": "+1%"}]}, price_book=book)
