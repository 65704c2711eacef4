"""Reading a user's own compose file (``target.compose``) without rewriting it.

The harness needs only a few facts from it, read at load time so that ``harness validate``
catches mistakes without an engine: the service names (in file order), which container
ports each service publishes (the entry must publish one), and the CPU / memory limits that
price a replica (``cpus`` / ``mem_limit``, or ``deploy.resources.limits``). Values are
interpolated as compose does (``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``$VAR``,
``$$``) from the environment and the ``.env`` file beside the compose file.

Every problem is a :class:`ComposeFileError` whose message names the file and the line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["ComposeFile", "ComposeFileError", "ComposeService", "read_compose_file"]

_VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}"
                  r"|([A-Za-z_][A-Za-z0-9_]*))")
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([bkmg]?)b?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}
_PORT = re.compile(r"(\d+)(?:-\d+)?(?:/(tcp|udp|sctp))?")


class ComposeFileError(ValueError):
    """A compose file the harness cannot use; the message names the file and the line."""


@dataclass(frozen=True)
class ComposeService:
    """What the harness reads about one service of the user's compose file."""

    name: str
    line: int
    ports: list[int] = field(default_factory=list)  # published container ports (tcp)
    cpu: float | None = None
    memory: int | None = None
    profiles: bool = False  # started only with a compose profile: not by a plain ``up``


@dataclass(frozen=True)
class ComposeFile:
    path: Path
    services: dict[str, ComposeService]


def read_compose_file(path: Path, env: Mapping[str, str] | None = None) -> ComposeFile:
    """Parse ``path``; raise ComposeFileError naming the file and line of the first problem."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ComposeFileError(f"{path}: cannot read the file ({exc})") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ComposeFileError(f"{path} {where}: YAML syntax error: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ComposeFileError(f"{path}: YAML error: {exc}") from exc
    reader = _Reader(path, dict(_dotenv(path.parent / ".env")) | dict(env or os.environ))
    return ComposeFile(path, reader.services(root))


class _Reader:
    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path = path
        self.env = env

    def fail(self, node: yaml.Node | None, message: str) -> ComposeFileError:
        line = f" line {node.start_mark.line + 1}" if node is not None else ""
        return ComposeFileError(f"{self.path}{line}: {message}")

    def services(self, root: yaml.Node | None) -> dict[str, ComposeService]:
        if not isinstance(root, yaml.MappingNode):
            raise self.fail(root, "not a compose file: the top level must be a mapping with "
                                  "`services:`")
        node = _get(root, "services")
        if node is None:
            raise self.fail(root, "not a compose file: it has no `services:` mapping")
        if not isinstance(node, yaml.MappingNode) or not node.value:
            raise self.fail(node, "`services:` must be a mapping of at least one service")
        out: dict[str, ComposeService] = {}
        for key, value in node.value:
            name = str(key.value)
            if not isinstance(value, yaml.MappingNode):
                raise self.fail(value, f"services.{name}: must be a mapping")
            out[name] = self.service(name, key, value)
        return out

    def service(self, name: str, key: yaml.Node, node: yaml.MappingNode) -> ComposeService:
        where = f"services.{name}"
        cpu_node = _get(node, "cpus") or _path(node, "deploy", "resources", "limits", "cpus")
        mem_node = (_get(node, "mem_limit")
                    or _path(node, "deploy", "resources", "limits", "memory"))
        ports = _get(node, "ports")
        return ComposeService(
            name=name, line=key.start_mark.line + 1,
            ports=self.ports(ports, f"{where}.ports") if ports is not None else [],
            cpu=self.cpu(cpu_node, where) if cpu_node is not None else None,
            memory=self.memory(mem_node, where) if mem_node is not None else None,
            profiles=_get(node, "profiles") is not None)

    def scalar(self, node: yaml.Node, where: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{where}: must be a single value")
        return _VAR.sub(self._substitute, str(node.value)).strip()

    def _substitute(self, match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        value = self.env.get(name)
        if match.group(2) == ":-" and not value:
            return match.group(3)
        if match.group(2) == "-" and value is None:
            return match.group(3)
        return value or ""

    def cpu(self, node: yaml.Node, where: str) -> float:
        text = self.scalar(node, f"{where}.cpus")
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise self.fail(node, f"{where}: cpus must be a number > 0, got {text!r}")
        return value

    def memory(self, node: yaml.Node, where: str) -> int:
        text = self.scalar(node, f"{where}: memory limit")
        match = _MEMORY.fullmatch(text)
        if match is None or float(match.group(1)) <= 0:
            raise self.fail(node, f"{where}: memory limit must be a size such as 256m or "
                                  f"1g, got {text!r}")
        return int(float(match.group(1)) * _UNITS[match.group(2).lower()])

    def ports(self, node: yaml.Node, where: str) -> list[int]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{where}: must be a list")
        found: list[int] = []
        for index, item in enumerate(node.value):
            port = self.port(item, f"{where}[{index}]")
            if port is not None and port not in found:
                found.append(port)
        return found

    def port(self, node: yaml.Node, where: str) -> int | None:
        """The container port of one ``ports`` entry (None for udp/sctp)."""
        if isinstance(node, yaml.MappingNode):
            target = _get(node, "target")
            protocol = _get(node, "protocol")
            if target is None:
                raise self.fail(node, f"{where}: has no `target` (the container port)")
            if protocol is not None and self.scalar(protocol, where) != "tcp":
                return None
            text = self.scalar(target, f"{where}.target")
        else:
            text = self.scalar(node, where).rsplit(":", 1)[-1]
        match = _PORT.fullmatch(text)
        if match is None:
            raise self.fail(node, f"{where}: cannot read a container port from {text!r}")
        return None if match.group(2) not in (None, "tcp") else int(match.group(1))


def _get(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            if isinstance(v, yaml.ScalarNode) and v.tag == "tag:yaml.org,2002:null":
                return None
            return v  # type: ignore[no-any-return]
    return None


def _path(node: yaml.Node, *keys: str) -> yaml.Node | None:
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return None
        found = _get(node, key)
        if found is None:
            return None
        node = found
    return node


def _dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of compose's ``.env`` file (comments and blanks skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            out[key.strip()] = value.strip().strip("\"'")
    return out
