"""The ``target:`` block of a scenario: the services under test (re-exported by
:mod:`harness.scenario`).

Two ways to describe a stack:

* ``services:`` — the harness starts each service itself (local processes, or a compose file
  it generates for the docker runtime);
* ``compose: path/to/docker-compose.yml`` — the user's own compose file, run as is under a
  project name the harness chooses (docker runtime). ``services:`` is then optional and only
  overrides what the harness cannot read from the file: pricing (``cpu``, ``memory``,
  ``role``, ``billing``) and start-up (``health``, ``startup_timeout``).
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from harness.scenario.compose import ComposeFile, ComposeFileError, read_compose_file
from harness.scenario.values import (
    Count,
    Duration,
    Memory,
    Positive,
    Problem,
    ProblemList,
    StrictModel,
    StrValue,
    show,
    split_command,
)

__all__ = ["Kind", "Role", "Service", "Target"]

_SERVICE_NAME = re.compile(r"[a-z0-9_-]+")
_COMPOSE_NAME = re.compile(r"[A-Za-z0-9._-]+")
Kind = Literal["process", "valkey", "postgres", "compose"]
Role = Literal["app", "cache", "database", "external"]
_KIND_ROLE: dict[str, Role] = {"process": "app", "valkey": "cache", "postgres": "database",
                               "compose": "app"}
# What a service of a user's compose file may set in the scenario (the rest is the file's).
COMPOSE_OVERRIDES = ("kind", "health", "startup_timeout", "role", "cpu", "memory", "billing")


def hint(name: str, known: list[str], what: str = "service") -> str:
    close = difflib.get_close_matches(name, known, n=1)
    suffix = f'; did you mean "{close[0]}"?' if close else ""
    return f"names no {what} (known: {', '.join(known)}){suffix}"


def _source_dir(info: ValidationInfo) -> Path:
    source = info.context.get("source") if isinstance(info.context, dict) else None
    return source.parent if isinstance(source, Path) else Path.cwd()


def _resolve(info: ValidationInfo, value: Path) -> Path:
    """``value`` relative to the scenario file, absolute and without ``..``."""
    return Path(os.path.normpath((_source_dir(info) / value).absolute()))


class Service(StrictModel):
    """One service of the target stack; defaults of health and role follow ``kind``."""

    kind: Kind = "process"
    command: Annotated[list[str] | None, BeforeValidator(split_command)] = None
    health: str | None = "/health"
    replicas: Count = 1
    env: dict[str, StrValue] = Field(default_factory=dict)
    startup_timeout: Duration = 30.0
    role: Role = "app"
    cpu: Positive | None = None
    memory: Memory | None = None
    depends_on: list[str] = Field(default_factory=list)
    image: str | None = None
    billing: Literal["instance", "serverless", "usage"] = "instance"
    # The local runtime runs ``command`` under this virtualenv ({python} is its interpreter)
    # or this interpreter, never in the harness's own environment.
    venv: Path | None = None
    python: Path | None = None

    @property
    def interpreter(self) -> Path | None:
        """The Python that ``{python}`` names (None: the harness's own)."""
        if self.python is not None:
            return self.python
        return self.venv / "bin" / "python" if self.venv is not None else None

    @field_validator("venv")
    @classmethod
    def _check_venv(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = _resolve(info, value)
        if not (path / "bin" / "python").exists():
            state = "is not a virtualenv (no bin/python)" if path.exists() else "does not exist"
            raise ValueError(f"{path} {state}; create it with `python3 -m venv {path}` and "
                             f"install the service into it (`{path}/bin/pip install ...`)")
        return path

    @field_validator("python")
    @classmethod
    def _check_python(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        if len(value.parts) == 1:  # a bare name: looked up on PATH
            found = shutil.which(str(value))
            if found is None:
                raise ValueError(f"{show(str(value))} is not on PATH; give the interpreter's "
                                 "path (or a venv: `venv: path/to/venv`)")
            return Path(found)
        path = _resolve(info, value)
        if not path.is_file():
            raise ValueError(f"{path} does not exist; give an interpreter's path, or create a "
                             f"virtualenv (`python3 -m venv DIR`) and give `venv: DIR`")
        return path

    @model_validator(mode="after")
    def _by_kind(self) -> Service:
        given = self.model_fields_set
        if "health" not in given and self.kind != "process":
            self.health = None
        if "role" not in given:
            self.role = _KIND_ROLE[self.kind]
        problems: list[Problem] = []
        if self.kind == "process" and not self.command:
            problems.append((("command",), "required for kind process"))
        if self.kind in ("valkey", "postgres") and "command" in given:
            problems.append(
                (("command",), f"not allowed for kind {self.kind}: the harness starts it")
            )
        if self.kind == "compose":
            problems += [((key,), "set in the compose file: the harness runs it as is "
                                  f"(here only {', '.join(COMPOSE_OVERRIDES[1:])})")
                         for key in sorted(given - set(COMPOSE_OVERRIDES))]
        elif self.kind != "process":
            problems += [((key,), f"applies to kind process only (this is {self.kind})")
                         for key in ("venv", "python") if key in given]
        if self.venv is not None and self.python is not None:
            problems.append((("python",), "give venv or python, not both"))
        if self.health is not None and not self.health.startswith("/"):
            problems.append(
                (("health",), f'must be an HTTP path starting with "/", got {show(self.health)}')
            )
        if problems:
            raise ProblemList(problems)
        return self


class Target(StrictModel):
    """The stack under test; ``entry`` defaults to the first service whose role is app (with
    ``compose``: the first service that publishes a port)."""

    runtime: Literal["local", "docker"] = "local"
    entry: str = ""
    compose: Path | None = None
    services: dict[str, Service] = Field(default_factory=dict)
    # A replica that dies on its own mid-run: record it and go on, or stop the run (exit 3).
    on_crash: Literal["continue", "stop"] = "continue"

    @model_validator(mode="before")
    @classmethod
    def _compose_kind(cls, data: Any) -> Any:
        """With ``compose``, the services given are overrides of the file's (kind compose)."""
        if not isinstance(data, dict) or data.get("compose") is None:
            return data
        services = data.get("services")
        if not isinstance(services, dict):
            return data
        overrides = {name: {"kind": "compose"} | spec if isinstance(spec, dict) else spec
                     for name, spec in services.items()}
        return data | {"services": {k: {} if v is None else v for k, v in overrides.items()}}

    @field_validator("compose")
    @classmethod
    def _resolve_compose(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = _resolve(info, value)
        if not path.is_file():
            state = "is a directory, not a compose file" if path.is_dir() else "file not found"
            raise ValueError(f"{state}: {path}")
        return path

    @model_validator(mode="after")
    def _check_graph(self) -> Target:
        problems = self._compose_services() if self.compose is not None else []
        if self.compose is None and not self.services:
            problems.append((("services",), "give at least one service (or compose: FILE)"))
        known = list(self.services)
        for name, service in self.services.items():
            pattern = _COMPOSE_NAME if self.compose is not None else _SERVICE_NAME
            if not pattern.fullmatch(name):
                problems.append((("services", name),
                                 f"service name must match {pattern.pattern}"))
            for index, dep in enumerate(service.depends_on):
                if dep not in self.services:
                    problems.append((("services", name, "depends_on", index), hint(dep, known)))
        for cycle in _cycles({n: s.depends_on for n, s in self.services.items()}):
            loc = ("services", cycle[0], "depends_on")
            problems.append((loc, "dependency cycle: " + " -> ".join(cycle)))
        if self.compose is None:
            problems += self._default_entry(known)
        if problems:
            raise ProblemList(problems)
        return self

    def _default_entry(self, known: list[str]) -> list[Problem]:
        if "entry" in self.model_fields_set:
            return [] if self.entry in self.services or not known else [
                (("entry",), hint(self.entry, known))]
        apps = [n for n, s in self.services.items() if s.role == "app"]
        if apps:
            self.entry = apps[0]
            return []
        return [(("entry",), "no service has role app: name the one to load")] if known else []

    def _compose_services(self) -> list[Problem]:
        """Read the compose file: its services, with the scenario's overrides merged in."""
        assert self.compose is not None
        problems: list[Problem] = []
        if "runtime" in self.model_fields_set and self.runtime != "docker":
            problems.append((("runtime",), "a compose target runs on the docker runtime "
                                           "(leave runtime out or set it to docker)"))
        self.runtime = "docker"
        try:
            found = read_compose_file(self.compose)
        except ComposeFileError as exc:
            return problems + [(("compose",), str(exc))]
        names = [n for n, s in found.services.items() if not s.profiles] or list(found.services)
        for name, svc in self.services.items():
            if svc.kind != "compose":
                problems.append((("services", name, "kind"), "with compose: the services "
                                 "are the file's; leave kind out"))
            if name not in found.services:
                problems.append((("services", name),
                                 hint(name, names, f"service of {self.compose.name}")))
        problems += self._compose_entry(found, names)
        merged: dict[str, Service] = {}
        for name, info in found.services.items():
            base = self.services.get(name) or Service(kind="compose")
            update = {key: value for key, value in (("cpu", info.cpu), ("memory", info.memory))
                      if key not in base.model_fields_set and value is not None}
            merged[name] = base.model_copy(update=update) if update else base
        self.services = merged
        return problems

    def _compose_entry(self, found: ComposeFile, names: list[str]) -> list[Problem]:
        file = found.path.name
        if "entry" not in self.model_fields_set:
            published = [n for n in names if found.services[n].ports]
            if not published:
                return [(("compose",), f"no service of {found.path} publishes a port: traffic "
                                       "needs one (e.g. ports: [\"127.0.0.1::8000\"])")]
            self.entry = published[0]
            return []
        info = found.services.get(self.entry)
        if info is None:
            return [(("entry",), hint(self.entry, names, f"service of {found.path}"))]
        if not info.ports:
            return [(("entry",), f'service "{self.entry}" ({file} line {info.line}) publishes '
                                 'no port; traffic reaches the entry through a port it '
                                 'publishes on the host, e.g. ports: ["127.0.0.1::8000"]')]
        return []


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Each dependency cycle once, as a closed path ``[a, b, a]``."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for dep in graph[node]:
            if state.get(dep) == 1:
                found.append(path[path.index(dep) :] + [dep])
            elif dep in graph and dep not in state:
                visit(dep, path)
        path.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])
    return found
