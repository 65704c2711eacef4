"""The one exception tree of the harness; `cli/main.py` maps it to exit codes.

::

    HarnessError                      (exit 2 unless a subclass says otherwise)
    ├── InputError                    exit 2: the user gave something we cannot use
    │   ├── ScenarioInvalid           a scenario file (carries every problem found)
    │   ├── PriceBookError            a price book: unknown, bad unit, negative, missing price
    │   ├── ArtifactError             a run directory: missing, truncated, foreign schema
    │   ├── BudgetError               a gate budget (scenario/budgets.py)
    │   ├── BaselineError             a named baseline (compare/baselines.py)
    │   ├── InvalidProfile            a profile upload (profiling/proto.py; answered with 400)
    │   ├── InvalidOtlp               an OTLP payload (otel/decode.py; answered with 400/413/415)
    │   ├── ProfileQueryError         a Pyroscope server's answer (profiling/query.py)
    │   └── ApiProblem, FramingError  the fault proxy's API / HTTP framing (faults/)
    ├── RunFailed                     exit 3: the run could not be carried out
    │   ├── TargetError               a service would not start, crashed, port in use
    │   ├── FaultError                a fault could not be injected
    │   │   └── RollbackFailed        a fault could not be reverted
    │   ├── MeteringError             resource sampling failed
    │   └── CandidateFailed           the gate's candidate run did not complete (gate/gate.py)
    ├── GateFailed                    exit 1: a budget failed
    └── Interrupted                   exit 130: SIGINT / SIGTERM
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_INPUT = 2
EXIT_RUN_FAILED = 3
EXIT_INTERRUPTED = 130


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code: int = EXIT_INPUT


class InputError(HarnessError):
    """Something the user gave (file, option, header, artifact) cannot be used."""

    exit_code = EXIT_INPUT


class ScenarioInvalid(InputError):
    """A scenario file has one or more problems; each names its field path and line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


class PriceBookError(InputError):
    """A price book is unknown, malformed, or lacks a price that a run needs."""


class ArtifactError(InputError):
    """A run directory is missing, truncated, or was written by another schema."""


class RunFailed(HarnessError):
    """The run could not be carried out (target, fault or metering failure)."""

    exit_code = EXIT_RUN_FAILED


class TargetError(RunFailed):
    """A service of the stack would not start, failed its health check, or crashed."""


class FaultError(RunFailed):
    """A fault could not be injected."""


class RollbackFailed(FaultError):
    """A fault could not be reverted: the system may still be degraded."""


class MeteringError(RunFailed):
    """Sampling resource usage failed."""


class GateFailed(HarnessError):
    """A budget of the gate failed."""

    exit_code = EXIT_GATE_FAILED


class Interrupted(HarnessError):
    """The run was stopped by SIGINT or SIGTERM."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, signal_name: str = "SIGINT") -> None:
        self.signal_name = signal_name
        super().__init__(f"interrupted by {signal_name}")
