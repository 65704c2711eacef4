"""Black-box attribution: per-endpoint CPU per call fitted from metered usage per window.

For a service that reports nothing per request, the metered CPU of each window of a designed
mix (``windows.py``) is modelled as ``cpu = sum(calls_e * c_e) + idle * seconds`` and fitted by
non-negative least squares (``scipy.optimize.nnls``; columns scaled to unit norm first). The
95 % interval of each ``c_e`` comes from a pairs bootstrap over windows (windows resampled
with replacement, refitted ``BOOTSTRAP`` times), so it widens with noise and narrows as the
run gets longer. A fit is used only when the design can identify it:

* at least ``max(MIN_WINDOWS, endpoints + 3)`` windows;
* the scaled design matrix is well conditioned (``cond < MAX_CONDITION``): a fixed mix at a
  fixed rate makes every endpoint's calls a multiple of the window length, which no fit can
  split;
* the model explains the CPU it is fitted to (``R^2 >= MIN_R2``).

Otherwise the fit says why (``warning``) and the ledger falls back to an even split, which
it names as such, rather than print a confident wrong number.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import nnls

from harness.cost.windows import WindowData

BOOTSTRAP = 300
MIN_WINDOWS = 8
MAX_CONDITION = 20.0  # simulated fixed mixes: 26-160; designed: 6-7 (and 6.7 on a real run)
MIN_R2 = 0.3
MIN_CALLS = 10  # calls of an endpoint inside fitted windows below which it is not estimated


@dataclass(frozen=True)
class EndpointFit:
    """CPU ms per call of one endpoint, with its 95 % bootstrap interval."""

    cpu_ms: float
    low_ms: float
    high_ms: float
    calls: int  # calls inside the fitted windows


@dataclass(frozen=True)
class ServiceFit:
    """The fit of one service in one phase, and whether it may price anything."""

    service: str
    phase: str
    windows: int
    window_s: float
    guard_s: float
    endpoints: dict[str, EndpointFit] = field(default_factory=dict)
    idle_cores: float = 0.0  # CPU-seconds per second no call explains
    r2: float = float("nan")
    condition: float = float("nan")
    warning: str | None = None  # why it is not used (None: usable)

    @property
    def usable(self) -> bool:
        return self.warning is None

    def describe(self) -> dict[str, object]:
        """JSON-able form for summary.json."""
        return {
            "service": self.service, "phase": self.phase, "windows": self.windows,
            "window_s": self.window_s, "guard_s": round(self.guard_s, 3),
            "r2": _finite(self.r2), "condition": _finite(self.condition),
            "idle_cores": self.idle_cores, "usable": self.usable, "warning": self.warning,
            "endpoints": {e: {"cpu_ms_per_call": f.cpu_ms, "low_ms": f.low_ms,
                              "high_ms": f.high_ms, "calls": f.calls}
                          for e, f in self.endpoints.items()},
        }  # fmt: skip


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def _solve(x: np.ndarray, y: np.ndarray, norms: np.ndarray) -> np.ndarray:
    coef, _ = nnls(x / norms, y, maxiter=50 * x.shape[1])
    return np.asarray(coef / norms)


def _bootstrap(x: np.ndarray, y: np.ndarray, norms: np.ndarray, seed: int) -> np.ndarray:
    """``BOOTSTRAP`` refits on windows drawn with replacement; shape (BOOTSTRAP, columns)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    draws = np.empty((BOOTSTRAP, x.shape[1]))
    for b in range(BOOTSTRAP):
        pick = rng.integers(0, n, n)
        draws[b] = _solve(x[pick], y[pick], norms)
    return draws


def _weakness(data: WindowData, x: np.ndarray, cond: float) -> str | None:
    n, p = x.shape
    need = max(MIN_WINDOWS, p + 2)
    hint = ("run longer or shorten traffic.design.window" if data.designed
            else "set traffic.mix: designed")
    if n < need:
        return (f"{n} usable window(s) of {data.window_s:g} s for {p - 1} endpoint(s): at least "
                f"{need} are needed ({hint})")
    if not np.isfinite(cond) or cond > MAX_CONDITION:
        more = "raise traffic.design.spread or rate_swing" if data.designed else hint
        return (f"the traffic mix did not vary enough to tell the endpoints apart (design "
                f"condition number {cond:.3g} > {MAX_CONDITION:g}; {more})")
    return None


def fit_service(data: WindowData, seed: int = 0) -> ServiceFit:
    """Fit per-endpoint CPU per call for one service and phase."""
    base = ServiceFit(data.service, data.phase, len(data.cpu_s), data.window_s, data.guard_s)
    if not data.endpoints:
        return replace(base, warning="no calls inside the fitted windows")
    x = np.column_stack([data.counts, data.seconds])
    y = data.cpu_s
    norms = np.linalg.norm(x, axis=0)
    norms[norms == 0] = 1.0
    cond = float(np.linalg.cond(x / norms)) if len(y) >= x.shape[1] else float("inf")
    weak = _weakness(data, x, cond)
    if weak is not None:
        return replace(base, condition=cond, warning=weak)
    coef = _solve(x, y, norms)
    residual = y - x @ coef
    spread = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / spread if spread > 0 else float("nan")
    draws = _bootstrap(x, y, norms, seed)
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    endpoints = {}
    for i, name in enumerate(data.endpoints):
        calls = int(data.counts[:, i].sum())
        if calls >= MIN_CALLS:
            endpoints[name] = EndpointFit(coef[i] * 1000.0, low[i] * 1000.0, high[i] * 1000.0,
                                          calls)
    warning = None
    if not np.isfinite(r2) or r2 < MIN_R2:
        warning = (f"the fit explains {r2:.0%} of the metered CPU's variation across windows "
                   f"(< {MIN_R2:.0%}): too little CPU per call against the noise")
    return replace(base, endpoints=endpoints, idle_cores=float(coef[-1]), r2=r2, condition=cond,
                 warning=warning)
