"""Fill ``{python}``, ``{port}``, ``{run_dir}``, ``{replica}`` and ``{services.NAME.url|port|host}``
into service commands and environment values. Other ``{...}`` text is left alone (JSON in env)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from harness.errors import TargetError

_PLACEHOLDER = re.compile(r"\{(python|port|run_dir|replica|services\.[A-Za-z0-9_-]+\.[a-z]+)\}")


def fill(text: str, values: Mapping[str, str], where: str) -> str:
    """Replace known placeholders; an unknown service reference is a TargetError."""

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise TargetError(f"{where}: {{{key}}} names no started service or known value")
        return values[key]

    return _PLACEHOLDER.sub(one, text)
