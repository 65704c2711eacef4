"""Stage 4b — the CI gate: budgets and a baseline/candidate pair in, a verdict out.

Takes budgets (the scenario's ``gate:`` block or ``--budget`` strings, parsed by
``harness.scenario.budgets``) and the comparison of baseline and candidate runs
(``harness.compare``); ``gate`` checks each budget against the estimate's interval and
returns a :class:`GateResult` (pass / warn / fail per check); ``output`` writes the JUnit XML,
the Markdown summary and JSON; ``render`` the HTML of a comparison. The CLI maps a failed gate
to exit 1.
"""

from harness.gate.gate import (
    SEVERITY,
    CandidateFailed,
    Check,
    GateResult,
    Margin,
    decide,
    evaluate,
    gate_run,
    margin,
)

__all__ = [
    "SEVERITY",
    "CandidateFailed",
    "Check",
    "GateResult",
    "Margin",
    "decide",
    "evaluate",
    "gate_run",
    "margin",
]
