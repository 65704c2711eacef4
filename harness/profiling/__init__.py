"""Continuous profiling per endpoint: the embedded Pyroscope receiver and its artifacts.

* :class:`ProfileReceiver` — agents in the targets push to it; it stores ``RUN_DIR/profiles/``.
* :func:`cpu_by_endpoint`, :func:`folded_profile`, :func:`top_functions` — read them back.
* :func:`flame_graph_svg`, :func:`diff_flame_graph_svg` — inline SVG for the reports.
* :class:`PyroscopeQuery` — the same profiles from a real Pyroscope server instead.

See ``docs/profiling.md``.
"""

from harness.profiling.analysis import (
    FunctionCost,
    cpu_by_endpoint,
    folded_profile,
    read_folded,
    top_functions,
)
from harness.profiling.flame import diff_flame_graph_svg, flame_graph_svg
from harness.profiling.layout import PROFILES_DIR, ProfileEntry, ProfileIndex, load_index
from harness.profiling.pprof import UNTAGGED
from harness.profiling.proto import InvalidProfile
from harness.profiling.query import ProfileQueryError, PyroscopeQuery
from harness.profiling.receiver import ProfileReceiver
from harness.profiling.store import OTHER

__all__ = [
    "OTHER",
    "PROFILES_DIR",
    "UNTAGGED",
    "FunctionCost",
    "InvalidProfile",
    "ProfileEntry",
    "ProfileIndex",
    "ProfileQueryError",
    "ProfileReceiver",
    "PyroscopeQuery",
    "cpu_by_endpoint",
    "diff_flame_graph_svg",
    "flame_graph_svg",
    "folded_profile",
    "load_index",
    "read_folded",
    "top_functions",
]
