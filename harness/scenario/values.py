"""The base model and field types of the scenario: durations, memory sizes, counts, commands.

Each field type is an ``Annotated`` type whose before-validator accepts what a person writes
in YAML ("1m30s", "512Mi", a command line) and raises ``ValueError`` with a message naming what
was expected and what was given. Booleans are never numbers (YAML reads ``yes`` as true).
Cross-field validators report with :class:`ProblemList` (several problems below the failing
location); :class:`TypeMismatch` makes the loader say "must be <the field's type>, got <value>".
"""

from __future__ import annotations

import json
import math
import re
import shlex
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator

Loc = tuple[str | int, ...]  # a key path: ("requests", 2, "method")
Problem = tuple[Loc, str]


class ProblemList(ValueError):
    """Raised by a model validator to report several problems below its own location."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(message for _, message in problems))


class TypeMismatch(ValueError):
    """Raised by a before-validator: the value has the wrong type for the field."""


def show(value: object) -> str:
    """A short rendering of a user-supplied value for a problem message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:56] + '..."'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)([KkMGT]i?)?")
_BYTES = {"": 1, "K": 10**3, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_BYTES.update({"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40})


class StrictModel(BaseModel):
    """Base of the scenario models: unknown keys and NaN/infinity are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as "30s", "2m", "1m30s", "500ms", "1h"."""
    seconds = _number(value)
    if isinstance(value, str):
        text = value.strip()
        if _DURATION.fullmatch(text):
            seconds = sum(float(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
        elif _NUMBER.fullmatch(text):
            seconds = float(text)
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(
            f"must be a duration such as 30s, 2m, 1m30s, 500ms or seconds, got {show(value)}"
        )
    return seconds


def _positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be a duration > 0, got {show(value)}")
    return seconds


def parse_memory(value: object) -> int:
    """Bytes from an int or a size such as "512Mi", "1Gi" (binary) or "256M", "1G" (decimal)."""
    amount = _number(value)
    match = _MEMORY.fullmatch(value.strip()) if isinstance(value, str) else None
    if match:
        amount = float(match.group(1)) * _BYTES[match.group(2) or ""]
    if amount is None or not math.isfinite(amount) or amount < 1:
        raise ValueError(f"must be bytes or a size such as 512Mi, 1Gi, 256M, 1G, got {show(value)}")
    return int(amount)


def parse_think_time(value: object) -> tuple[float, float]:
    """A duration ``t`` -> ``(t, t)``; a ``[min, max]`` pair of durations -> ``(min, max)``."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ValueError(f"must be a duration or a [min, max] pair, got {len(value)} items")
        low, high = parse_duration(value[0]), parse_duration(value[1])
        if low > high:
            raise ValueError(f"min {low:g}s is greater than max {high:g}s")
        return (low, high)
    seconds = parse_duration(value)
    return (seconds, seconds)


def to_text(value: object) -> str:
    """A YAML scalar as the string a person means by it (booleans lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError(f"must be a string, number or boolean, got {show(value)}")


def split_command(value: object) -> object:
    """A command line (shell-split here, so quoting mistakes surface at load time) or a list."""
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split the command line: {exc}") from exc
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(f"must be a command line or a list of strings, got {show(value)}")
    if not value:
        raise ValueError("must not be empty")
    return [to_text(part) for part in value]


def _scalar(value: object) -> str | int | float | bool:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {show(value)}")
    if isinstance(value, str | int | float):
        return value
    raise ValueError(f"must be a string, number or boolean, got {show(value)}")


def check_body(value: object) -> Any:
    """A request body: a mapping or list (sent as JSON), a string (sent as is), or None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        try:
            json.dumps(value, allow_nan=False)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"cannot be sent as JSON: {exc}") from exc
        return value
    raise ValueError(f"must be a mapping or list (sent as JSON) or a string, got {show(value)}")


def _no_bool(value: object) -> object:
    if isinstance(value, bool):
        raise TypeMismatch("booleans are not numbers")
    return value


Integer = Annotated[int, BeforeValidator(_no_bool)]
Count = Annotated[int, BeforeValidator(_no_bool), Field(ge=1)]
Positive = Annotated[float, BeforeValidator(_no_bool), Field(gt=0)]
NonNegative = Annotated[float, BeforeValidator(_no_bool), Field(ge=0)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
Memory = Annotated[int, BeforeValidator(parse_memory)]
StrValue = Annotated[str, BeforeValidator(to_text)]
ScalarValue = Annotated[str | int | float | bool, PlainValidator(_scalar)]
JsonBody = Annotated[dict[str, Any] | list[Any] | str | None, PlainValidator(check_body)]
