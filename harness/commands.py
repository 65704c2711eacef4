"""What each CLI command does, as functions returning an exit code (only ``cli.py`` exits)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUN_FAILED, ScenarioInvalid

STATUS_EXIT = {"completed": EXIT_OK, "interrupted": EXIT_INTERRUPTED}


def dispatch(args: argparse.Namespace) -> int:
    handlers = {"run": cmd_run, "validate": cmd_validate, "report": cmd_report,
                "price": cmd_price, "price-books": cmd_price_books}
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
    from harness.analysis import analyse, print_summary
    from harness.cost import load_price_book
    from harness.plan import print_plan
    from harness.run import Run, default_run_dir, prepare_run_dir
    from harness.scenario import load_scenario

    scenario = load_scenario(args.scenario).with_overrides(duration=args.duration,
                                                           runtime=args.runtime)
    book_name = args.price_book or scenario.pricing.price_book
    book = load_price_book(book_name, scenario.pricing.overrides)  # fail before starting anything
    if args.dry_run:
        print_plan(scenario, book_name)
        return EXIT_OK
    run_dir: Path = args.output or default_run_dir(scenario)
    prepare_run_dir(run_dir)
    run = Run(scenario, run_dir, price_book=book_name)
    run.progress.prices = book.live_prices()
    result = run.execute()
    if result.error:
        print(f"run {result.status}: {result.error}", file=sys.stderr)
    report = None
    if result.records > 0:
        outcome = analyse(run_dir)
        print_summary(outcome.summary)
        report = outcome.report
    print(f"run directory: {run_dir}")
    print(f"report: {report}" if report else "report: none (no request was recorded)")
    return STATUS_EXIT.get(result.status, EXIT_RUN_FAILED)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.analysis import analyse

    outcome = analyse(args.run_dir, price_book=args.price_book)
    print(f"report: {outcome.report}")
    return EXIT_OK


def cmd_price(args: argparse.Namespace) -> int:
    from harness.analysis import analyse, print_summary

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
