"""What each CLI command does, as functions returning an exit code (only ``cli.py`` exits)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILED,
    InputError,
    ScenarioInvalid,
)

if TYPE_CHECKING:
    from harness.scenario import Scenario

STATUS_EXIT = {"completed": EXIT_OK, "interrupted": EXIT_INTERRUPTED}


def dispatch(args: argparse.Namespace) -> int:
    handlers = {"run": cmd_run, "validate": cmd_validate, "report": cmd_report,
                "price": cmd_price, "price-books": cmd_price_books, "cleanup": cmd_cleanup,
                "worker": cmd_worker, "images": cmd_images}
    from harness.cli.gate import HANDLERS

    handlers.update(HANDLERS)
    return handlers[args.command](args)


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.scenario import load_scenario

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioInvalid as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    print(f"OK: {args.scenario} (scenario {scenario.name!r})")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from harness.cost import load_price_book
    from harness.run import default_run_dir, prepare_run_dir
    from harness.run.plan import print_plan
    from harness.scenario import load_scenario

    scenario = load_scenario(args.scenario).with_overrides(duration=args.duration,
                                                           runtime=args.runtime)
    book_name = args.price_book or scenario.pricing.price_book
    load_price_book(book_name, scenario.pricing.overrides)  # fail before starting anything
    names = [args.variant] if args.variant else list(scenario.variants)
    plans = [(n, scenario.variant(n)) for n in names] or [("default", scenario)]
    if args.dry_run:
        for name, plan in plans:
            print_plan(plan, book_name, variant=name)
        return EXIT_OK
    run_dir: Path = args.output or default_run_dir(scenario)
    prepare_run_dir(run_dir)
    if args.repeat > 1:
        return _repeated(plans, run_dir, book_name, args.repeat, args.baseline)
    remote = args.remote_workers if args.remote_workers is not None else (
        1 if args.master_bind else 0)
    distributed = {"master_bind": args.master_bind, "remote_workers": remote}
    if len(plans) == 1:
        return _one_run(plans[0][1], run_dir, book_name, plans[0][0], distributed,
                        args.baseline)
    return _variant_runs(plans, run_dir, book_name, distributed)


def _one_run(scenario: Scenario, run_dir: Path, book_name: str, variant: str,
             distributed: dict[str, Any], baseline: str | None = None) -> int:
    from harness.cost import load_price_book
    from harness.report.analysis import analyse, print_summary
    from harness.run import Run

    book = load_price_book(book_name, scenario.pricing.overrides)
    run = Run(scenario, run_dir, price_book=book_name, variant=variant, **distributed)
    run.progress.prices = book.live_prices()
    result = run.execute()
    if result.error:
        print(f"run {result.status}: {result.error}", file=sys.stderr)
    report = None
    if result.records > 0:
        outcome = analyse(run_dir)
        print_summary(outcome.summary)
        report = outcome.report
    code = STATUS_EXIT.get(result.status, EXIT_RUN_FAILED)
    baseline = baseline or scenario.gate.baseline
    if baseline is not None and code == EXIT_OK:
        code = _gate(scenario, [run_dir], baseline)
    print(f"run directory: {run_dir}")
    print(f"report: {report}" if report else "report: none (no request was recorded)")
    return code


def _repeated(plans: list[tuple[str, Scenario]], run_dir: Path, book_name: str, times: int,
              baseline: str | None) -> int:
    """``--repeat N``: N runs of one scenario; the gate pools their windows."""
    if len(plans) != 1:
        raise InputError("--repeat runs one scenario: choose a variant with --variant")
    name, scenario = plans[0]
    dirs = []
    for index in range(1, times + 1):
        print(f"== repeat {index} of {times}", flush=True)
        dirs.append(run_dir / f"repeat-{index}")
        dirs[-1].mkdir(parents=True)
        code = _one_run(scenario, dirs[-1], book_name, name, {})
        if code != EXIT_OK:
            return code
    baseline = baseline or scenario.gate.baseline
    return _gate(scenario, dirs, baseline) if baseline else EXIT_OK


def _gate(scenario: Scenario, run_dirs: list[Path], baseline: str) -> int:
    from harness.gate import gate_run
    from harness.gate.output import GateOutputs, publish

    run_dir = run_dirs[0].parent if len(run_dirs) > 1 else run_dirs[0]
    result = gate_run(run_dirs if len(run_dirs) > 1 else run_dirs[0], baseline, scenario.gate)
    outputs = GateOutputs(junit=run_dir / "gate-junit.xml", markdown=run_dir / "gate.md",
                          json=run_dir / "gate.json")
    print(publish(result, outputs))
    return result.exit_code


def _variant_runs(plans: list[tuple[str, Scenario]], run_dir: Path, book_name: str,
                  distributed: dict[str, Any]) -> int:
    """Each variant in its own run directory, then a side-by-side summary."""
    from harness.report.variants import write_variant_summary

    codes: dict[str, int] = {}
    for name, scenario in plans:
        print(f"== variant {name}", flush=True)
        vdir = run_dir / name
        vdir.mkdir(parents=True)
        codes[name] = _one_run(scenario, vdir, book_name, name, distributed)
        if codes[name] == EXIT_INTERRUPTED:
            break
    report = write_variant_summary(run_dir, [n for n, _ in plans if n in codes])
    print(f"report: {report}")
    return max(codes.values(), key=lambda c: (c != EXIT_OK, c))


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report.analysis import analyse

    outcome = analyse(args.run_dir, price_book=args.price_book)
    print(f"report: {outcome.report}")
    return EXIT_OK


def cmd_price(args: argparse.Namespace) -> int:
    from harness.report.analysis import analyse, print_summary

    outcome = analyse(args.run_dir, price_book=args.price_book, billing_model=args.billing_model)
    print_summary(outcome.summary)
    print(f"summary: {args.run_dir / 'summary.json'}")
    return EXIT_OK


def cmd_price_books(args: argparse.Namespace) -> int:
    from harness.cost import list_price_books

    for info in list_price_books():
        print(f"{info.name:32} {info.currency}  effective {info.effective_date}  "
              f"{info.description}")
    return EXIT_OK


def cmd_cleanup(args: argparse.Namespace) -> int:
    from harness.run.cleanup import clean_run, stale_runs

    runs = args.run_dirs or stale_runs(args.reports)
    if not runs:
        print(f"nothing to clean: no unfinished run under {args.reports}")
    for run_dir in runs:
        done = clean_run(run_dir, force=args.force)
        if done.skipped:
            print(f"{run_dir}: skipped, {done.skipped}")
            continue
        print(f"{run_dir}: marked aborted; stopped {len(done.killed)} process(es)"
              + (f"; removed {', '.join(done.removed)}" if done.removed else ""))
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from harness.scenario import Scenario, load_scenario
    from harness.traffic.worker import run_worker

    if args.scenario_json is not None:  # a local worker the run started
        import json

        data = json.loads(args.scenario_json.read_text(encoding="utf-8"))
        source = Path(data.pop("_source"))
        scenario = Scenario.model_validate(data, context={"source": source})
    elif args.scenario is not None:
        scenario = load_scenario(args.scenario)
        if args.variant:
            scenario = scenario.variant(args.variant)
    else:
        raise InputError("harness worker: give the SCENARIO the master runs")
    import socket

    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    records = run_worker(scenario, args.master, args.run_dir, name, args.variant or "default")
    print(f"worker {name}: {records} request records {'written' if args.run_dir else 'shipped'}")
    return EXIT_OK


def cmd_images(args: argparse.Namespace) -> int:
    from harness.images import bootstrap_images

    names = bootstrap_images(force=args.force, progress=lambda line: print(line, flush=True))
    for role, image in names.items():
        print(f"{role:12} {image}")
    return EXIT_OK
