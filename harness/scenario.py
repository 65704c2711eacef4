"""The scenario: what to start, what traffic to send, how to price it; loaded from YAML.

``load_scenario(path)`` returns a validated :class:`Scenario` or raises
:class:`~harness.errors.ScenarioInvalid` listing every problem as ``path (line N): message``.
Reading, line numbers and error wording live in :mod:`harness.scenario_yaml`; this module holds
the models, their cross-field rules and :meth:`RequestSpec.render` for the load generator.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from harness.errors import InputError, ScenarioInvalid
from harness.faults.spec import FaultSpec, fault_problems
from harness.gate_budgets import GateSpec
from harness.scenario_requests import Param, RenderedRequest, RequestSpec
from harness.scenario_values import (
    Count,
    Duration,
    Memory,
    NonNegative,
    Positive,
    PositiveDuration,
    Problem,
    ProblemList,
    StrictModel,
    StrValue,
    parse_think_time,
    show,
    split_command,
)
from harness.scenario_yaml import parse_document, read_text, validation_problems
from harness.variants import Variants, patched, variant_problems

__all__ = [
    "Otel",
    "Param",
    "Pricing",
    "RenderedRequest",
    "RequestSpec",
    "Scenario",
    "Service",
    "Stage",
    "Target",
    "Traffic",
    "load_scenario",
    "parse_scenario",
    "validate_scenario",
]

_NAME = re.compile(r"[A-Za-z0-9._-]+")
# Environment variables and headers whose values are never written to artifacts.
_SECRET = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|AUTH|CREDENTIAL|PRIVATE",
                     re.IGNORECASE)
REDACTED = "***"
_SERVICE_NAME = re.compile(r"[a-z0-9_-]+")
_CLOSED_ONLY = frozenset({"users", "spawn_rate", "think_time"})
_OPEN_ONLY = frozenset({"rate", "arrival", "max_in_flight"})

Kind = Literal["process", "valkey", "postgres"]
Role = Literal["app", "cache", "database", "external"]
_KIND_ROLE: dict[str, Role] = {"process": "app", "valkey": "cache", "postgres": "database"}


def _hint(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    suffix = f'; did you mean "{close[0]}"?' if close else ""
    return f"names no service (known: {', '.join(known)}){suffix}"


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
        if self.kind != "process" and "command" in given:
            problems.append(
                (("command",), f"not allowed for kind {self.kind}: the harness starts it")
            )
        if self.health is not None and not self.health.startswith("/"):
            problems.append(
                (("health",), f'must be an HTTP path starting with "/", got {show(self.health)}')
            )
        if problems:
            raise ProblemList(problems)
        return self


class Target(StrictModel):
    """The stack under test; ``entry`` defaults to the first service whose role is app."""

    runtime: Literal["local", "docker"] = "local"
    entry: str = ""
    services: dict[str, Service] = Field(min_length=1)
    # A replica that dies on its own mid-run: record it and go on, or stop the run (exit 3).
    on_crash: Literal["continue", "stop"] = "continue"

    @model_validator(mode="after")
    def _check_graph(self) -> Target:
        known = list(self.services)
        problems: list[Problem] = []
        for name, service in self.services.items():
            if not _SERVICE_NAME.fullmatch(name):
                problems.append((("services", name), "service name must match [a-z0-9_-]+"))
            for index, dep in enumerate(service.depends_on):
                if dep not in self.services:
                    problems.append((("services", name, "depends_on", index), _hint(dep, known)))
        for cycle in _cycles({n: s.depends_on for n, s in self.services.items()}):
            loc = ("services", cycle[0], "depends_on")
            problems.append((loc, "dependency cycle: " + " -> ".join(cycle)))
        if "entry" in self.model_fields_set:
            if self.entry not in self.services:
                problems.append((("entry",), _hint(self.entry, known)))
        else:
            apps = [n for n, s in self.services.items() if s.role == "app"]
            if apps:
                self.entry = apps[0]
            else:
                problems.append((("entry",), "no service has role app: name the one to load"))
        if problems:
            raise ProblemList(problems)
        return self


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


class Stage(StrictModel):
    """One step of a ramp: closed-model stages set ``users``, open-model stages ``rate``."""

    duration: PositiveDuration
    users: Count | None = None
    spawn_rate: Positive | None = None
    rate: Positive | None = None


class Traffic(StrictModel):
    """How load is offered. Closed model: ``users`` loop with think time; open model:
    ``rate`` arrivals per second whatever the latency. With ``stages``, ``users``/``rate`` is the
    warm-up level (default: the first stage's) and the stages follow it."""

    model: Literal["closed", "open"] = "closed"
    users: Count | None = None
    spawn_rate: Positive | None = None
    think_time: Annotated[tuple[float, float], BeforeValidator(parse_think_time)] = (0.0, 0.0)
    rate: Positive | None = None
    arrival: Literal["constant", "poisson"] = "constant"
    max_in_flight: Count = 200
    stages: list[Stage] | None = Field(default=None, min_length=1)
    duration: PositiveDuration = 30.0
    warmup: Duration = 0.0
    timeout: PositiveDuration = 10.0
    # A user's connection is closed once it is this old (0: never), as real clients and load
    # balancers do, so new connections spread over all replicas, including ones added under load.
    connection_lifetime: Duration = 5.0
    # Load-generator processes: 1 runs Locust in the harness process; N > 1 (or "auto", one
    # per core) runs N local workers on Locust's master/worker engine.
    workers: Count | Literal["auto"] = 1

    @property
    def worker_count(self) -> int:
        return (os.cpu_count() or 1) if self.workers == "auto" else int(self.workers)

    @property
    def measured_duration(self) -> float:
        """Seconds of traffic after the warm-up (the priced part)."""
        return self.duration

    @property
    def total_duration(self) -> float:
        """Warm-up plus measured seconds."""
        return self.warmup + self.duration

    def with_duration(self, seconds: float) -> Traffic:
        """A copy measuring ``seconds`` (stages past the end are cut off)."""
        if not seconds > 0:
            raise InputError(f"the duration must be > 0 seconds, got {seconds}")
        return self.model_copy(update={"duration": float(seconds)})

    @model_validator(mode="after")
    def _check_model(self) -> Traffic:
        closed = self.model == "closed"
        foreign = (_OPEN_ONLY if closed else _CLOSED_ONLY) & self.model_fields_set
        other = "open" if closed else "closed"
        problems: list[Problem] = [
            ((key,), f"applies to the {other} model only (model is {self.model})")
            for key in sorted(foreign)
        ]
        problems += self._check_stages(closed)
        first = self.stages[0] if self.stages else None
        if closed:
            self.users = self.users or (first.users if first else None) or 1
            self.spawn_rate = self.spawn_rate or float(self.users)
        elif self.rate is None:
            self.rate = first.rate if first else None
            if first is None:
                problems.append((("rate",), "required for the open model (or give stages)"))
        if problems:
            raise ProblemList(problems)
        return self

    def _check_stages(self, closed: bool) -> list[Problem]:
        problems: list[Problem] = []
        need, banned = ("users", ("rate",)) if closed else ("rate", ("users", "spawn_rate"))
        kind = "a closed-model" if closed else "an open-model"
        for index, stage in enumerate(self.stages or []):
            loc = ("stages", index)
            if getattr(stage, need) is None:
                problems.append((loc + (need,), f"required in {kind} stage"))
            for key in banned:
                if key in stage.model_fields_set:
                    problems.append((loc + (key,), f"not allowed in {kind} stage"))
            if closed and stage.spawn_rate is None and stage.users:
                stage.spawn_rate = float(stage.users)
        if self.stages:
            total = sum(stage.duration for stage in self.stages)
            if "duration" not in self.model_fields_set:
                self.duration = total
            elif self.duration < total:
                message = f"{self.duration:g}s is shorter than the stages ({total:g}s)"
                problems.append((("duration",), message))
        return problems


class Pricing(StrictModel):
    """Which price book prices the run, and per-unit overrides of its prices."""

    price_book: Annotated[str, Field(min_length=1)] = "opencost-default"
    overrides: dict[str, NonNegative] = Field(default_factory=dict)
    monthly_calls: Positive | None = None  # for the monthly projection and amortized costs


class Profiling(StrictModel):
    """Continuous profiling of the targets: an embedded Pyroscope receiver, or a real server."""

    enabled: bool = False
    sample_rate: Count = 100
    server: str | None = None  # read the run's profiles from this Pyroscope instead
    basic_auth: str | None = None  # "user:password"; never written to artifacts
    tenant: str | None = None


class Otel(StrictModel):
    """OpenTelemetry in: targets export spans to the embedded OTLP receiver (docs/otel.md)."""

    enabled: bool = False
    grace: Duration = 5.0  # after the stack is down: wait this long at most for last spans
    schedule_delay: Duration = 0.2  # OTEL_BSP_SCHEDULE_DELAY given to the targets (seconds)


def _empty_if_none(value: object) -> object:
    return {} if value is None else value


def _no_items_if_none(value: object) -> object:
    return [] if value is None else value


class Scenario(StrictModel):
    """A validated scenario. ``source`` is the file it was read from (not part of dumps)."""

    name: str
    description: str | None = None
    target: Target
    traffic: Traffic = Field(default_factory=Traffic)
    locustfile: Path | None = None
    requests: list[RequestSpec] = Field(default_factory=list, validate_default=True)
    pricing: Pricing = Field(default_factory=Pricing)
    variants: Annotated[Variants, BeforeValidator(_empty_if_none)] = Field(default_factory=dict)
    faults: Annotated[list[FaultSpec], BeforeValidator(_no_items_if_none)] = Field(
        default_factory=list
    )
    gate: Annotated[GateSpec, BeforeValidator(_empty_if_none)] = Field(default_factory=GateSpec)
    profiling: Profiling = Field(default_factory=Profiling)
    otel: Otel = Field(default_factory=Otel)
    # A real Toxiproxy (toxiproxy://HOST:PORT) instead of the embedded fault proxy.
    fault_proxy: str | None = None
    _source: Path = PrivateAttr(default=Path("<memory>"))

    def model_post_init(self, context: Any, /) -> None:
        source = context.get("source") if isinstance(context, dict) else None
        if isinstance(source, Path):
            self._source = source

    @property
    def source(self) -> Path:
        """The scenario file."""
        return self._source

    def dump(self) -> dict[str, Any]:
        """JSON-able form, for the manifest; secrets are redacted."""
        data = self.model_dump(mode="json")
        if data["profiling"].get("basic_auth"):
            data["profiling"]["basic_auth"] = REDACTED
        for service in data["target"]["services"].values():
            service["env"] = {k: REDACTED if _SECRET.search(k) else v
                              for k, v in service["env"].items()}
        for request in data["requests"]:
            request["headers"] = {k: REDACTED if _SECRET.search(k) else v
                                  for k, v in request["headers"].items()}
        return data

    def with_overrides(self, duration: float | None = None, runtime: str | None = None) -> Scenario:
        """A copy with the CLI's ``--duration`` (seconds) and ``--runtime`` applied."""
        update: dict[str, Any] = {}
        if duration is not None:
            update["traffic"] = self.traffic.with_duration(duration)
        if runtime is not None:
            if runtime not in ("local", "docker"):
                raise InputError(f'the runtime must be "local" or "docker", got {show(runtime)}')
            update["target"] = self.target.model_copy(update={"runtime": runtime})
        return self.model_copy(update=update)

    def variant(self, name: str) -> Scenario:
        """This scenario with variant ``name`` applied (and no other variants)."""
        if name not in self.variants:
            known = ", ".join(self.variants) or "none"
            raise InputError(f"variant {name!r} is not defined in {self.source} (known: {known})")
        services = {k: patched(v, self.variants[name][k]) if k in self.variants[name] else v
                    for k, v in self.target.services.items()}
        target = self.target.model_copy(update={"services": services})
        return self.model_copy(update={"target": target, "variants": {}})

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value) or set(value) == {"."}:
            raise ValueError(
                f"must match [A-Za-z0-9._-]+ (it names directories), got {show(value)}"
            )
        return value

    @field_validator("locustfile")
    @classmethod
    def _resolve_locustfile(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        source = info.context.get("source") if isinstance(info.context, dict) else None
        path = (source.parent if isinstance(source, Path) else Path.cwd()) / value
        if not path.is_file():
            raise ValueError(f"file not found: {path}")
        return path

    @field_validator("requests")
    @classmethod
    def _check_requests(cls, value: list[RequestSpec], info: ValidationInfo) -> list[RequestSpec]:
        if "locustfile" not in info.data:
            return value  # the locustfile itself is invalid: reported there
        has_file = info.data["locustfile"] is not None
        if value and has_file:
            raise ValueError("give either requests or a locustfile, not both")
        if not value and not has_file:
            raise ValueError("give at least one request (or a locustfile)")
        first: dict[str, int] = {}
        problems: list[Problem] = []
        for index, request in enumerate(value):
            seen = first.setdefault(request.name, index)
            if seen != index:
                message = f'duplicate request name "{request.name}" (also requests[{seen}])'
                problems.append(((index, "name"), message))
        if problems:
            raise ProblemList(problems)
        return value


    @model_validator(mode="after")
    def _check_faults(self) -> Scenario:
        services = list(self.target.services)
        problems = fault_problems(self.faults, services, self.traffic.measured_duration)
        problems += variant_problems(self.variants, services)
        if problems:
            raise ProblemList(problems)
        return self


def load_scenario(path: Path, env: Mapping[str, str] | None = None) -> Scenario:
    """Read and validate a scenario file; ``${VAR}`` comes from ``env`` (default os.environ).

    Raises ScenarioInvalid listing every problem as ``path (line N): message``.
    """
    return parse_scenario(read_text(path), path, env)


def parse_scenario(text: str, source: Path, env: Mapping[str, str] | None = None) -> Scenario:
    """Like :func:`load_scenario` for text already read; ``source`` names it and anchors
    relative paths (the locustfile)."""
    document = parse_document(text, str(source), os.environ if env is None else env)
    found: list[Problem] = []
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(document.data, context={"source": source})
    except ValidationError as exc:
        found = validation_problems(exc, document.data, Scenario)
    problems = document.format(found)
    if problems or scenario is None:
        raise ScenarioInvalid(str(source), problems)
    return scenario


def validate_scenario(path: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """The problems of a scenario file; empty when it is valid."""
    try:
        load_scenario(path, env)
    except ScenarioInvalid as exc:
        return exc.problems
    return []
