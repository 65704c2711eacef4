"""Number formatting shared by the HTML report and the terminal summary."""

from __future__ import annotations

import math

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


def seconds(value: float) -> str:
    """An offset from the run start: ``75 s`` or ``12:05`` (minutes) past ten minutes."""
    if value < 600:
        return f"{value:.0f} s"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes}:{secs:02d}"
