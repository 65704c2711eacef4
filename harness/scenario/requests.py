"""Request specs of a scenario and their compiled templates, filled in on the hot path.

:class:`RequestSpec` validates one request of a scenario (every placeholder defined, every
param used) and compiles it once into string parts and slots. Each param's values are encoded in
advance for every place they can appear (raw in headers, percent-encoded in the path, as a JSON
value, or inside a JSON string), so :meth:`CompiledRequest.render` draws one value per param and
joins strings. A JSON field whose whole value is ``"{id}"`` takes the param's type (``42``, not
``"42"``); placeholders inside longer strings are text.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import quote

from pydantic import BeforeValidator, Field, model_validator

from harness.scenario.values import (
    Integer,
    JsonBody,
    Loc,
    Positive,
    Problem,
    ProblemList,
    ScalarValue,
    StrictModel,
    StrValue,
    show,
    to_text,
)

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
RAW, URL, JSON_VALUE, IN_JSON_STRING = 0, 1, 2, 3
Encoded = tuple[str, str, str, str]  # indexed by the modes above


class _Slot(NamedTuple):
    param: str
    mode: int


Template = str | tuple[str | _Slot, ...]


@dataclass(slots=True)
class RenderedRequest:
    """One concrete request, ready to send; a new object per render (not frozen: cheaper).

    ``content_type`` is None when there is no body and no Content-Type header."""

    name: str
    method: str
    path: str
    headers: dict[str, str]
    body_bytes: bytes | None
    content_type: str | None
    tenant: str | None


def encode(value: str | int | float | bool) -> Encoded:
    """``value`` as written raw, in a URL path/query, as a JSON value, inside a JSON string."""
    text = to_text(value)
    return (text, quote(text, safe=""), json.dumps(value), json.dumps(text)[1:-1])


@dataclass(frozen=True, slots=True)
class Picker:
    """Draws one param value per render: one of ``encoded``, or an int in [low, high]."""

    encoded: tuple[Encoded, ...] = ()
    low: int = 0
    high: int = 0

    def pick(self, rng: random.Random) -> Encoded:
        if len(self.encoded) == 1:
            return self.encoded[0]
        if self.encoded:
            return self.encoded[rng.randrange(len(self.encoded))]
        text = str(rng.randint(self.low, self.high))
        return (text, text, text, text)


def find_placeholders(value: Any) -> set[str]:
    """Names of ``{name}`` placeholders in a string, or in a JSON-like tree (keys included)."""
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return find_placeholders(list(value)) | find_placeholders(list(value.values()))
    if isinstance(value, list):
        return set().union(*(find_placeholders(item) for item in value))
    return set()


def text_template(text: str, mode: int) -> Template:
    """Literal pieces and slots of ``text``; pieces are JSON-escaped in IN_JSON_STRING mode."""
    parts: list[str | _Slot] = []
    position = 0
    for match in PLACEHOLDER.finditer(text):
        parts.append(text[position : match.start()])
        parts.append(_Slot(match.group(1), mode))
        position = match.end()
    parts.append(text[position:])
    if mode == IN_JSON_STRING:
        parts = [json.dumps(p)[1:-1] if isinstance(p, str) else p for p in parts]
    return _merge(parts)


def json_template(body: Any) -> Template:
    """The compact JSON text of ``body`` with placeholder slots."""
    parts: list[str | _Slot] = []
    _json_parts(body, parts)
    return _merge(parts)


def _json_parts(value: Any, out: list[str | _Slot]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            out.append("," if index else "")
            _json_string(str(key), out)
            out.append(":")
            _json_parts(item, out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for index, item in enumerate(value):
            out.append("," if index else "")
            _json_parts(item, out)
        out.append("]")
    elif isinstance(value, str) and (whole := PLACEHOLDER.fullmatch(value)):
        out.append(_Slot(whole.group(1), JSON_VALUE))
    elif isinstance(value, str):
        _json_string(value, out)
    else:
        out.append(json.dumps(value))


def _json_string(text: str, out: list[str | _Slot]) -> None:
    template = text_template(text, IN_JSON_STRING)
    out.append('"')
    out.extend((template,) if isinstance(template, str) else template)
    out.append('"')


def _merge(parts: Sequence[str | _Slot]) -> Template:
    """Join adjacent strings; a template without slots becomes one plain string."""
    merged: list[str | _Slot] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    if not merged:
        return ""
    if len(merged) == 1 and isinstance(merged[0], str):
        return merged[0]
    return tuple(merged)


def fill(template: Template, picked: Mapping[str, Encoded]) -> str:
    """The template with each slot replaced by the picked value's encoding for its place."""
    if isinstance(template, str):
        return template
    return "".join([p if isinstance(p, str) else picked[p.param][p.mode] for p in template])


@dataclass(frozen=True, slots=True)
class CompiledRequest:
    """A request spec turned into templates and pickers; :meth:`render` is the hot path."""

    name: str
    method: str
    path: Template
    headers: tuple[tuple[str, Template], ...]
    body: Template | None
    content_type: str | None
    params: tuple[tuple[str, Picker], ...]
    tenant: Picker | None

    def render(self, rng: random.Random) -> RenderedRequest:
        picked = {name: picker.pick(rng) for name, picker in self.params}
        return RenderedRequest(
            self.name,
            self.method,
            fill(self.path, picked),
            {key: fill(value, picked) for key, value in self.headers},
            None if self.body is None else fill(self.body, picked).encode(),
            self.content_type,
            None if self.tenant is None else self.tenant.pick(rng)[RAW],
        )


def compile_request(
    name: str,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: Any,
    params: Mapping[str, Picker],
    tenant: Picker | None,
) -> CompiledRequest:
    """Compile once; a ``Content-Type`` header moves to ``content_type``."""
    content_type = None
    if isinstance(body, str):
        content_type = "text/plain; charset=utf-8"
    elif body is not None:
        content_type = "application/json"
    kept: list[tuple[str, Template]] = []
    for key, value in headers.items():
        if key.lower() == "content-type":
            content_type = value
        else:
            kept.append((key, text_template(value, RAW)))
    return CompiledRequest(
        name=name,
        method=method,
        path=text_template(path, URL),
        headers=tuple(kept),
        body=None
        if body is None
        else (text_template(body, RAW) if isinstance(body, str) else json_template(body)),
        content_type=content_type,
        params=tuple(params.items()),
        tenant=tenant,
    )


class Param(StrictModel):
    """A request parameter: a constant (written as a plain scalar), a choice or an int range."""

    choice: list[ScalarValue] | None = Field(default=None, min_length=1)
    range: tuple[Integer, Integer] | None = None
    value: ScalarValue | None = None

    @model_validator(mode="before")
    @classmethod
    def _constant(cls, data: Any) -> Any:
        return data if isinstance(data, dict) else {"value": data}

    @model_validator(mode="after")
    def _one_kind(self) -> Param:
        kinds = [k for k in ("choice", "range", "value") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("must be a constant, {choice: [...]} or {range: [lo, hi]}")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ProblemList([(("range",), f"low {self.range[0]} > high {self.range[1]}")])
        return self

    def picker(self) -> Picker:
        """The compiled form used by :meth:`RequestSpec.render`."""
        if self.range is not None:
            return Picker(low=self.range[0], high=self.range[1])
        values = self.choice if self.choice is not None else [self.value]
        return Picker(encoded=tuple(encode(v) for v in values if v is not None))


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


class RequestSpec(StrictModel):
    """One kind of request; ``{name}`` placeholders in path, headers and body come from params."""

    name: Annotated[str, Field(min_length=1)]
    method: Annotated[Method, BeforeValidator(_upper)] = "GET"
    path: str
    params: dict[str, Param] = Field(default_factory=dict)
    headers: dict[str, StrValue] = Field(default_factory=dict)
    body: JsonBody = None
    weight: Positive = 1.0
    tenant: Param | None = None

    @property
    def placeholders(self) -> frozenset[str]:
        """Names of the placeholders used in path, header values and body."""
        return frozenset(find_placeholders([self.path, list(self.headers.values()), self.body]))

    @functools.cached_property
    def compiled(self) -> CompiledRequest:
        """This request as templates and pickers, built on first use (treat specs as frozen).

        A cached property rather than a pydantic private attribute: those cost µs per access.
        """
        return compile_request(
            self.name,
            self.method,
            self.path,
            self.headers,
            self.body,
            {name: param.picker() for name, param in self.params.items()},
            None if self.tenant is None else self.tenant.picker(),
        )

    def render(self, rng: random.Random) -> RenderedRequest:
        """A concrete request with params drawn from ``rng``; a few µs."""
        return self.compiled.render(rng)

    @model_validator(mode="after")
    def _check_placeholders(self) -> RequestSpec:
        uses: dict[Loc, set[str]] = {("path",): find_placeholders(self.path)}
        uses.update({("headers", k): find_placeholders(v) for k, v in self.headers.items()})
        uses[("body",)] = find_placeholders(self.body)
        problems: list[Problem] = []
        if not self.path.startswith("/"):
            problems.append((("path",), f'must start with "/", got {show(self.path)}'))
        for loc, names in uses.items():
            for name in sorted(names - self.params.keys()):
                problems.append((loc, f"placeholder {{{name}}} is not defined in params"))
        for name in sorted(self.params.keys() - set().union(*uses.values())):
            problems.append((("params", name), "param is not used in path, headers or body"))
        if self.tenant is not None and self.tenant.range is not None:
            problems.append((("tenant",), "must be a name or {choice: [names...]}"))
        if problems:
            raise ProblemList(problems)
        return self
