"""The ``compare``, ``gate`` and ``baseline`` commands (wired into ``cli.py`` by
:func:`add_parsers` and :data:`HANDLERS`). Each returns an exit code; bad input raises an
:class:`~harness.errors.InputError` subclass (exit 2), a failed candidate run exits 3."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from harness.errors import EXIT_OK, InputError

BILLING_MODELS = ["instance", "serverless", "usage"]
GATE_EPILOG = """budgets (--budget, repeatable): METRIC[SCOPE]:LEVELS
  METRIC  cost_per_call, direct_cost_per_call, p50_ms, p95_ms, p99_ms, error_rate, throughput
  SCOPE   an endpoint name, * (every endpoint) or category=NAME; none: all endpoints together
  LEVELS  FAIL, or warn=W,fail=F; a level is +10% (relative change), +0.000001 / +20ms / +1pp
          (absolute change) or 0.00002 / 250ms / 1% / 30rps (a limit; no baseline needed)
  e.g.    --budget 'cost_per_call:warn=+5%,fail=+10%' --budget 'p95_ms[GET /cpu]:+25%'

verdicts: fail when the whole CI is beyond the fail level; inconclusive when the CI contains
it (passes unless --fail-on-inconclusive); warn when the estimate is beyond the warn level.
exit codes: 0 pass (warnings allowed) · 1 a budget failed · 2 usage or input error ·
3 the candidate run failed.  See docs/ci-gate.md.
"""


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.5 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number between 0.5 and 1, got {text!r}")
    return value


def _pricing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--price-book", metavar="NAME",
                        help="price every run with this book (default: the baseline's)")
    parser.add_argument("--billing-model", choices=BILLING_MODELS,
                        help="price app services under this model (usage: cost follows use)")
    parser.add_argument("--baselines", type=Path, default=Path("baselines"), metavar="DIR",
                        help="where named baselines live (default: baselines)")  # fmt: skip


def _add_compare(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("compare", help="compare runs: per endpoint and category, with CIs")
    p.add_argument("run_a", metavar="RUN_A", help="the reference: a run dir or baseline")
    p.add_argument("runs", nargs="+", metavar="RUN_B", help="runs to compare with RUN_A")
    p.add_argument("--output", type=Path, metavar="FILE",
                   help="the HTML file (default RUN_B/compare.html); .md and .json beside it")
    p.add_argument("--confidence", type=_confidence, default=0.95, metavar="LEVEL")
    p.add_argument("--min-effect", type=float, default=2.0, metavar="PERCENT",
                   help="smallest change coloured worse/better (default 2)")  # fmt: skip
    _pricing_options(p)


def _add_gate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("gate", help="check budgets of a candidate run against a baseline",
                       epilog=GATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidate", nargs="+", action="extend", required=True, metavar="RUN",
                   help="candidate run dir(s); several (--repeat) are pooled")
    p.add_argument("--baseline", nargs="+", action="extend", metavar="RUN",
                   help="baseline run dir(s), baseline dir or name (default: the scenario's)")
    p.add_argument("--budget", action="append", default=[], metavar="SPEC",
                   help="a budget (see below); replaces the scenario's budget of the same scope")
    p.add_argument("--scenario", type=Path, metavar="FILE",
                   help="take the gate: block from this scenario (default: the candidate's)")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="write the Markdown summary")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the result as JSON")
    p.add_argument("--fail-on-inconclusive", action="store_true",
                   help="an inconclusive budget fails the gate")  # fmt: skip
    _pricing_options(p)


def _add_baseline(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("baseline", help="save or list named baselines (small, git-friendly)")
    actions = p.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")
    save = actions.add_parser("save", help="save runs as baselines/NAME")
    save.add_argument("name", metavar="NAME")
    save.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    save.add_argument("--force", action="store_true", help="replace an existing baseline")
    save.add_argument("--dir", type=Path, default=Path("baselines"), metavar="DIR")
    save.add_argument("--price-book", metavar="NAME", help="price with this book")
    save.add_argument("--billing-model", choices=BILLING_MODELS)
    listing = actions.add_parser("list", help="list the saved baselines")
    listing.add_argument("--dir", type=Path, default=Path("baselines"), metavar="DIR")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``compare``, ``gate`` and ``baseline`` to the CLI's subparsers."""
    _add_compare(sub)
    _add_gate(sub)
    _add_baseline(sub)


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.compare import compare_sources, default_output
    from harness.compare.baselines import load_sources
    from harness.gate.render import files_for, write_compare

    if args.min_effect < 0:
        raise InputError(f"--min-effect must be >= 0, got {args.min_effect}")
    arguments = [args.run_a, *args.runs]
    sources = load_sources(arguments, args.price_book, args.billing_model, args.baselines)
    report = compare_sources(sources, args.confidence, args.min_effect / 100.0)
    output = args.output or default_output([s.path for s in sources])
    files = files_for(output)
    print(write_compare(report, files))
    print(f"compare: {files.html} ({files.markdown.name}, {files.json.name})")
    return EXIT_OK


def cmd_gate(args: argparse.Namespace) -> int:
    from harness.gate import gate_run
    from harness.gate.output import GateOutputs, publish
    from harness.scenario.budgets import load_gate_spec, parse_cli_budget

    budgets = [parse_cli_budget(text) for text in args.budget]
    spec = load_gate_spec(args.scenario) if args.scenario else None
    result = gate_run(args.candidate, args.baseline, spec, budgets, args.price_book,
                      args.billing_model, args.fail_on_inconclusive, args.baselines)  # fmt: skip
    print(publish(result, GateOutputs(args.junit, args.markdown, args.json)), end="")
    return result.exit_code


def cmd_baseline(args: argparse.Namespace) -> int:
    from harness.compare.baselines import list_baselines, save_baseline

    if args.baseline_command == "save":
        path = save_baseline(args.name, args.run_dirs, args.dir, args.price_book,
                             args.billing_model, args.force)  # fmt: skip
        size = sum(f.stat().st_size for f in path.iterdir())
        print(f"baseline {args.name}: {path} ({size / 1024:.1f} KiB)")
        return EXIT_OK
    found = list_baselines(args.dir)
    if not found:
        print(f"no baselines in {args.dir}")
    for info in found:
        cost = f"${info.cost_per_call:.3g}/call" if info.cost_per_call is not None else "–"
        print(f"{info.name:24} {info.scenario:20} {info.runs} run(s) {info.requests:>8,} calls  "
              f"{cost:>16}  {info.pricing:32} {info.saved_at}  {info.size_bytes / 1024:.1f} KiB")
    return EXIT_OK


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "compare": cmd_compare,
    "gate": cmd_gate,
    "baseline": cmd_baseline,
}
