"""Stage 1 — the scenario: a YAML file in, a validated :class:`Scenario` out.

Takes the text of a scenario file (and the environment, for ``${VAR}``); returns a typed,
immutable model of what to start (``target``), what traffic to send (``traffic``,
``requests``), which faults to inject, how to price and gate it — or raises
:class:`~harness.errors.ScenarioInvalid` naming every problem with its field path and line.
Nothing here starts, reads or writes anything else.

Modules: ``model`` (the Scenario and its cross-field rules), ``target`` (services, the user's
compose file), ``compose`` (reading a compose file), ``requests`` (endpoints, params, bodies),
``values`` (field types: durations, sizes, commands), ``reading`` (YAML with line numbers, error
wording), ``variants``, ``faults`` (fault specs), ``budgets`` (the gate's budgets).
"""

from harness.scenario.model import (
    MixDesign,
    Otel,
    Pricing,
    Scenario,
    Stage,
    Traffic,
    load_scenario,
    parse_scenario,
    validate_scenario,
)
from harness.scenario.requests import Param, RenderedRequest, RequestSpec
from harness.scenario.target import Service, Target

__all__ = [
    "MixDesign",
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
