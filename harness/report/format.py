"""Number formatting shared by the HTML report and the terminal summary."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["money", "num", "pct", "seconds", "usd"]


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def usd(value: float | None) -> str:
    """A per-call price: enough significant digits to compare tiny numbers."""
    if value is None or _missing(value):
        return "–"
    return "$0" if value == 0 else f"${value:.3g}" if abs(value) < 0.01 else f"${value:,.4f}"


def money(value: float | None) -> str:
    """An amount of money: cents above one cent, three significant digits below."""
    if value is None or _missing(value):
        return "–"
    return f"${value:,.2f}" if abs(value) >= 0.01 else f"${value:.3g}"


def num(value: float | None) -> str:
    """A measured quantity: whole numbers from 100 up, three significant digits below."""
    if value is None or _missing(value):
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def pct(value: float | None) -> str:
    """A ratio (0.25) as a percentage ("25.0 %")."""
    if value is None or _missing(value):
        return "–"
    return f"{value * 100:.1f} %"


def seconds(value: float, clock: bool | None = None) -> str:
    """An offset from the run start: ``75 s``, or with ``clock`` (default: from ten minutes
    on) ``12:05`` (m:ss) and ``2:00:05`` (h:mm:ss) from an hour on."""
    if not (value >= 600 if clock is None else clock):
        return f"{value:.0f} s"
    hours, rest = divmod(round(value), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def blackbox_lines(summary: dict[str, Any]) -> list[str]:
    """One line per black-box fit: how CPU per call was fitted, or why it was not."""
    lines = []
    for fit in summary.get("blackbox") or []:
        where = f"{fit['service']} ({fit['phase']})"
        if fit.get("usable"):
            lines.append(f"~ CPU per call of {where} fitted by regression over {fit['windows']} "
                         f"windows of {fit['window_s']:g} s (R² {num(fit.get('r2'))}); "
                         "[95 % interval]")
        else:
            lines.append(f"! CPU per call of {where} not fitted: {fit.get('warning')}; its CPU "
                         "is split evenly over its calls")
    return lines
