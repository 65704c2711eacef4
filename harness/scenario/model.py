"""The scenario: what to start, what traffic to send, how to price it; loaded from YAML.

``load_scenario(path)`` returns a validated :class:`Scenario` or raises
:class:`~harness.errors.ScenarioInvalid` listing every problem as ``path (line N): message``.
Reading, line numbers and error wording live in :mod:`harness.scenario.reading`; this module holds
the models, their cross-field rules and :meth:`RequestSpec.render` for the load generator.
"""

from __future__ import annotations

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
from harness.scenario.budgets import GateSpec
from harness.scenario.faults import FaultSpec, fault_problems
from harness.scenario.reading import Document, parse_document, read_text, validation_problems
from harness.scenario.requests import RequestSpec
from harness.scenario.target import Target
from harness.scenario.values import (
    Count,
    Duration,
    NonNegative,
    Positive,
    PositiveDuration,
    Problem,
    ProblemList,
    StrictModel,
    parse_think_time,
    show,
)
from harness.scenario.variants import Variants, patched, variant_problems

_NAME = re.compile(r"[A-Za-z0-9._-]+")
# Environment variables and headers whose values are never written to artifacts.
_SECRET = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|AUTH|CREDENTIAL|PRIVATE",
                     re.IGNORECASE)
REDACTED = "***"
_CLOSED_ONLY = frozenset({"users", "spawn_rate", "think_time"})
_OPEN_ONLY = frozenset({"rate", "arrival", "max_in_flight"})


class Stage(StrictModel):
    """One step of a ramp: closed-model stages set ``users``, open-model stages ``rate``."""

    duration: PositiveDuration
    users: Count | None = None
    spawn_rate: Positive | None = None
    rate: Positive | None = None


class MixDesign(StrictModel):
    """How ``mix: designed`` varies the traffic so per-endpoint cost can be fitted black-box:
    every ``window`` the endpoint weights are multiplied by log-uniform factors in
    [1/spread, spread] and (open model) the rate by 1-rate_swing, 1 or 1+rate_swing, drawn per
    window from ``seed`` (the same in every load-generator process)."""

    window: PositiveDuration = 3.0
    spread: Annotated[float, Field(ge=1.0, le=100.0)] = 4.0
    rate_swing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5
    seed: int = 1


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
    # Endpoint weights: as given (weighted), varied per window so per-endpoint cost can be
    # fitted from metered usage (designed), or designed once the entry is seen to send no CPU
    # telemetry (auto; docs/blackbox.md).
    mix: Literal["auto", "weighted", "designed"] = "auto"
    design: MixDesign = Field(default_factory=MixDesign)

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
            if self.target.compose is not None and runtime != "docker":
                raise InputError(f"{self.source}: target.compose runs on the docker runtime; "
                                 f"--runtime {runtime} cannot run it")
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
    aliased = _locustfile_alias(document)
    found: list[Problem] = []
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(document.data, context={"source": source})
    except ValidationError as exc:
        found = validation_problems(exc, document.data, Scenario)
    if aliased:  # name the field as written
        found = [(("requests", *loc) if loc[:1] == ("locustfile",) else loc, message)
                 for loc, message in found]
    problems = document.format(found)
    if problems or scenario is None:
        raise ScenarioInvalid(str(source), problems)
    return scenario


def _locustfile_alias(document: Document) -> bool:
    """``requests: {locustfile: PATH}`` is ``locustfile: PATH`` (same validation)."""
    data = document.data
    requests = data.get("requests")
    if not isinstance(requests, dict) or "locustfile" not in requests:
        return False
    for key in requests:
        if key != "locustfile":
            document.problems.append((("requests", key), "unknown key: `requests:` as a "
                                      "mapping takes only locustfile (or give a list)"))
    if "locustfile" in data:
        document.problems.append((("requests", "locustfile"), "the locustfile is given twice "
                                  "(also at the top level); keep one"))
    data["locustfile"] = requests["locustfile"]
    del data["requests"]
    document.lines[("locustfile",)] = document.line_of(("requests", "locustfile"))
    return True


def validate_scenario(path: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """The problems of a scenario file; empty when it is valid."""
    try:
        load_scenario(path, env)
    except ScenarioInvalid as exc:
        return exc.problems
    return []
