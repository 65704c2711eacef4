"""Scenario files as plain data with line numbers, and problems named by path and line.

The YAML node tree is composed (not just loaded) so that every key path maps to the line it was
written on. ``${VAR}`` / ``${VAR:-default}`` are substituted in string values while walking the
tree; ``$${VAR}`` stays a literal ``${VAR}``. pydantic's ``ValidationError.errors()`` are then
translated into ``path (line N): message`` strings, with a did-you-mean hint for unknown keys.

Validators speak to it through ``ProblemList`` and ``TypeMismatch`` (``scenario.values``).
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from harness.errors import ScenarioInvalid
from harness.scenario.values import Loc, Problem, ProblemList, TypeMismatch, show

MAX_VALUES = 100_000  # guards against alias bombs ("billion laughs")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"
_VAR = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def read_text(path: Path) -> str:
    """The file's text, or ScenarioInvalid with one clear problem."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ScenarioInvalid(source, ["file not found"]) from exc
    except IsADirectoryError as exc:
        raise ScenarioInvalid(source, ["is a directory, not a scenario file"]) from exc
    except PermissionError as exc:
        raise ScenarioInvalid(source, ["cannot read the file: permission denied"]) from exc
    except OSError as exc:
        raise ScenarioInvalid(source, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start]
        line = raw[: exc.start].count(b"\n") + 1
        problem = f"line {line}: not UTF-8 text (byte 0x{bad:02x} at offset {exc.start})"
        raise ScenarioInvalid(source, [problem]) from exc


@dataclass
class Document:
    """A scenario file as plain data, its key-path -> line map and the problems seen so far."""

    data: dict[str, Any]
    lines: dict[Loc, int]
    problems: list[Problem] = field(default_factory=list)
    unset: list[Loc] = field(default_factory=list)

    def line_of(self, loc: Loc) -> int:
        """Line of ``loc``, or of its nearest written ancestor (for missing keys)."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return 1

    def format(self, problems: Iterable[Problem]) -> list[str]:
        """Reading problems plus ``problems``, sorted by line, as strings.

        Validation problems under a value with an unset variable are dropped: the variable is
        the cause, and its problem is already reported.
        """
        kept = [p for p in problems if not any(p[0][: len(u)] == u for u in self.unset)]
        kept = self.problems + [p for p in kept if p not in self.problems]
        ordered = sorted(dict.fromkeys(kept), key=lambda p: (self.line_of(p[0]), format_loc(p[0])))
        return [f"{format_loc(loc)} (line {self.line_of(loc)}): {msg}" for loc, msg in ordered]


def format_loc(loc: Loc) -> str:
    """``("requests", 2, "method")`` -> ``requests[2].method``; the root is ``top level``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text or "top level"


def parse_document(text: str, source: str, env: Mapping[str, str]) -> Document:
    """Compose ``text`` and walk it into a Document; raise ScenarioInvalid if it is no mapping."""
    walker = _Walker(env)
    try:
        root = _mapping_root(yaml.compose(text, Loader=yaml.SafeLoader), source)
        data = walker.mapping(root, ())
    except yaml.YAMLError as exc:
        raise ScenarioInvalid(source, [_syntax_problem(exc, text)]) from exc
    except RecursionError as exc:
        raise ScenarioInvalid(source, ["the YAML is nested too deeply"]) from exc
    except _TooLarge as exc:
        raise ScenarioInvalid(source, [f"more than {MAX_VALUES} values after aliases"]) from exc
    walker.lines[()] = root.start_mark.line + 1
    return Document(data, walker.lines, walker.problems, walker.unset)


def _mapping_root(root: yaml.Node | None, source: str) -> yaml.MappingNode:
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _NULL_TAG):
        raise ScenarioInvalid(source, ["the file is empty: expected a mapping (name, target, ...)"])
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else f"the scalar {root.value!r}"
        problem = f"top level (line {root.start_mark.line + 1}): must be a mapping, got {kind}"
        raise ScenarioInvalid(source, [problem])
    return root


def _syntax_problem(exc: yaml.YAMLError, text: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
        detail = f"{exc.problem} ({exc.context})" if exc.context else str(exc.problem)
        return f"line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {detail}"
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        return f"line {line}: YAML syntax error: unacceptable character #x{exc.character:04x}"
    return f"YAML syntax error: {exc}"


class _TooLarge(Exception):
    pass


class _Walker:
    """Turns a composed node tree into dicts/lists/scalars, recording lines and problems."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.lines: dict[Loc, int] = {}
        self.problems: list[Problem] = []
        self.unset: list[Loc] = []
        self._constructor = yaml.SafeLoader("")
        self._active: set[int] = set()
        self._count = 0

    def value(self, node: yaml.Node, loc: Loc) -> Any:
        self._count += 1
        if self._count > MAX_VALUES:
            raise _TooLarge
        if id(node) in self._active:
            self.problems.append((loc, "an alias refers to itself (recursive structure)"))
            return None
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, loc)
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, loc)
            items = []
            for index, item in enumerate(node.value):
                self.lines[loc + (index,)] = item.start_mark.line + 1
                items.append(self.value(item, loc + (index,)))
            return items
        finally:
            self._active.discard(id(node))

    def mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        self._check_duplicates(node, loc)
        try:
            self._constructor.flatten_mapping(node)
        except yaml.YAMLError as exc:
            self.problems.append((loc, f"invalid merge key (<<): {getattr(exc, 'problem', exc)}"))
            node.value = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                self.problems.append((loc, f"the key on line {line} must be a plain scalar"))
                continue
            key_loc = loc + (key_node.value,)
            self.lines[key_loc] = key_node.start_mark.line + 1
            result[key_node.value] = self.value(value_node, key_loc)
        return result

    def _check_duplicates(self, node: yaml.MappingNode, loc: Loc) -> None:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            line = key_node.start_mark.line + 1
            first = seen.setdefault(key_node.value, line)
            if first != line:
                message = f"duplicate key (first on line {first}); the last one wins"
                self.problems.append((loc + (key_node.value,), message))

    def scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        try:
            value = self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            self.problems.append((loc, f"cannot read {node.value!r} with the YAML tag {node.tag}"))
            return node.value
        if isinstance(value, str):
            return self.substitute(value, loc)
        if value is None or isinstance(value, bool | int | float):
            return value
        return node.value  # timestamps, binary: keep the text as written

    def substitute(self, text: str, loc: Loc) -> str:
        if "${" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            if match.group(1):
                return match.group(0)[1:]
            name, default = match.group(2), match.group(3)
            value = self.env.get(name)
            if value is not None and (value or default is None):
                return value
            if default is not None:
                return default
            self.problems.append((loc, f"environment variable {name} is not set"))
            self.unset.append(loc)
            return match.group(0)

        return _VAR.sub(replace, text)


def validation_problems(
    exc: ValidationError, data: dict[str, Any], model: type[BaseModel]
) -> list[Problem]:
    """Translate pydantic errors into (path, message) problems against the written data."""
    problems: list[Problem] = []
    for error in exc.errors():
        loc, kind = tuple(error["loc"]), error["type"]
        cause = error.get("ctx", {}).get("error")
        path = _data_loc(loc, data)
        if kind == "missing":
            problems.append((path, "required key is missing"))
        elif isinstance(cause, ProblemList):
            problems.extend((path + sub, message) for sub, message in cause.problems)
        elif kind == "extra_forbidden":
            problems.append((path, _unknown_key(loc, model)))
        elif kind == "union_tag_invalid":
            problems.append((path + (error["ctx"]["discriminator"].strip("'"),),
                             _bad_tag(error["ctx"])))
        elif kind == "value_error" and not isinstance(cause, TypeMismatch):
            problems.append((path, str(cause)))
        else:
            problems.append((path, _type_message(error, _annotation_at(model, path))))
    return problems


def _data_loc(loc: Loc, data: Any) -> Loc:
    """The parts of a pydantic ``loc`` that exist in the data (union tags dropped); a last key
    that is absent from its mapping is kept (a missing or defaulted field)."""
    kept: list[str | int] = []
    for index, part in enumerate(loc):
        in_dict = isinstance(data, dict) and isinstance(part, str) and part in data
        if in_dict or (isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)):
            data = data[part]
            kept.append(part)
        elif isinstance(data, dict) and isinstance(part, str) and index == len(loc) - 1:
            kept.append(part)
    return tuple(kept)


def _bad_tag(ctx: dict[str, Any]) -> str:
    """A discriminated union's tag (e.g. a fault's ``kind``) names no member."""
    allowed = [t.strip().strip("'") for t in str(ctx["expected_tags"]).split(",")]
    given = str(ctx["tag"])
    close = difflib.get_close_matches(given, allowed, n=1)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    return f"unknown value {show(given)}{hint} (allowed: {', '.join(allowed)})"


def _unknown_key(loc: Loc, model: type[BaseModel]) -> str:
    """``loc`` is pydantic's, union tags included, so the right union member is found."""
    parent = _core(_annotation_at(model, loc[:-1]))
    if not (isinstance(parent, type) and issubclass(parent, BaseModel)):
        return "unknown key"
    allowed = sorted(parent.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    if close:
        return f'unknown key; did you mean "{close[0]}"?'
    return f"unknown key; allowed keys: {', '.join(allowed)}"


def _type_message(error: Any, annotation: Any) -> str:
    kind, shown = error["type"], show(error["input"])
    if kind == "too_short" and error.get("ctx", {}).get("min_length") == 1:
        return "must not be empty"
    expected = describe(annotation)
    if expected is not None and kind not in ("too_short", "too_long"):
        return f"must be {expected}, got {shown}"
    message = str(error["msg"]).replace("Input should be", "must be")
    return f"{message[:1].lower()}{message[1:]}, got {shown}"


def _annotation_at(model: type[BaseModel], path: Loc) -> Any:
    """The type annotation (with its constraints) of the value at ``path``; None if unknown."""
    annotation: Any = model
    for part in path:
        core = _core(annotation)
        if isinstance(core, type) and issubclass(core, BaseModel):
            info = core.model_fields.get(part) if isinstance(part, str) else None
            if info is None:
                return None
            annotation = info.annotation
            if info.metadata:
                annotation = Annotated[(annotation, *info.metadata)]
            continue
        origin, args = get_origin(core), get_args(core)
        if origin in (Union, types.UnionType) and isinstance(part, str):
            annotation = _tagged_member(args, part)
            continue
        if origin in (list, tuple) and isinstance(part, int) and args:
            annotation = args[min(part, len(args) - 1)] if origin is tuple else args[0]
        elif origin is dict and len(args) == 2:
            annotation = args[1]
        else:
            return None
    return annotation


def _tagged_member(members: tuple[Any, ...], tag: str) -> Any:
    """The member of a discriminated union whose ``kind`` literal includes ``tag``."""
    for member in members:
        field = getattr(member, "model_fields", {}).get("kind")
        if field is not None and tag in get_args(field.annotation):
            return member
    return None


def _core(annotation: Any) -> Any:
    """Strip Annotated and Optional wrappers."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if get_origin(annotation) in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


_BASES: dict[Any, str] = {int: "an integer", float: "a number", str: "a string"}
_BASES.update({bool: "true or false", Path: "a file path"})


def describe(annotation: Any) -> str | None:
    """'an integer >= 1', 'one of "a", "b"', ... for an annotation; None if unknown."""
    bounds = "".join(_bounds(annotation))
    core = _core(annotation)
    if get_origin(core) is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in get_args(core))
    if get_origin(core) in (list, tuple):
        return "a list"
    if get_origin(core) is dict or (isinstance(core, type) and issubclass(core, BaseModel)):
        return "a mapping"
    base = _BASES.get(core)
    return None if base is None else base + bounds


def _bounds(annotation: Any) -> list[str]:
    found: list[str] = []
    if get_origin(annotation) is Annotated:
        found += _bounds(get_args(annotation)[0])
        for meta in get_args(annotation)[1:]:
            found += _constraint(meta)
    elif get_origin(annotation) in (Union, types.UnionType):
        for member in get_args(annotation):
            found += _bounds(member)
    return found


_OPS = (
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "<="),
    (annotated_types.Lt, "lt", "<"),
)


def _constraint(meta: Any) -> list[str]:
    if isinstance(meta, FieldInfo):
        return [text for inner in meta.metadata for text in _constraint(inner)]
    for kind, attr, op in _OPS:
        if isinstance(meta, kind):
            return [f" {op} {getattr(meta, attr):g}"]
    return []
