"""Stage 4a — compare: two sets of priced runs in, per-metric estimates of the change out.

Takes run directories or named baselines (``baselines``: small, git-friendly summaries of a
run's per-window sums); cuts each run into windows (``windows``) and estimates every metric's
change — cost per call, direct cost per call, latency percentiles, per endpoint — with
confidence intervals from a bootstrap over windows (``stats``); ``compare`` returns a
:class:`CompareReport` with a verdict per row. Rendering it is the gate's
(``harness.gate.render``).
"""

from harness.compare.compare import (
    CompareReport,
    Comparison,
    Row,
    SideInfo,
    compare_json,
    compare_sources,
    default_output,
    estimate_json,
    judge,
    side_info,
)

__all__ = [
    "CompareReport",
    "Comparison",
    "Row",
    "SideInfo",
    "compare_json",
    "compare_sources",
    "default_output",
    "estimate_json",
    "judge",
    "side_info",
]
