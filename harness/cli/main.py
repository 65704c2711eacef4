"""The `harness` command. Thin: parse, call the library, map the outcome to an exit code.

Exit codes: 0 success · 1 a budget/gate failed · 2 usage or input error · 3 the run failed ·
130 interrupted (SIGINT/SIGTERM).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from harness.errors import EXIT_INTERRUPTED
from harness.signals import ignore_interrupts, install_interrupt_handlers, take_held_signal

EPILOG = """exit codes:
  0    success
  1    a budget / gate failed
  2    usage or input error (bad scenario, unknown price book, bad run directory)
  3    the run failed (a target would not start, crashed, ...)
  130  interrupted (SIGINT / SIGTERM); artifacts are kept with status "interrupted"
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="harness", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Load-test and chaos harness that measures the cost per API call.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run a scenario and write its artifacts and report",
                         epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("scenario", type=Path, metavar="SCENARIO")
    run.add_argument("--duration", type=float, metavar="SECONDS",
                     help="measured duration after warm-up (overrides the file)")
    run.add_argument("--runtime", choices=["local", "docker"], help="overrides target.runtime")
    run.add_argument("--output", type=Path, metavar="RUN_DIR",
                     help="the run directory (default reports/<timestamp>-<scenario-name>/)")
    run.add_argument("--price-book", metavar="NAME", help="price book name or YAML path")
    run.add_argument("--dry-run", action="store_true", help="print the plan and run nothing")
    run.add_argument("--baseline", metavar="RUN_OR_NAME",
                     help="gate the run against this baseline (run dir or saved baseline)")
    run.add_argument("--repeat", type=int, default=1, metavar="N",
                     help="run N times (RUN_DIR/repeat-i); the gate pools them")
    run.add_argument("--master-bind", metavar="HOST:PORT",
                     help="listen for remote load-generator workers (harness worker) here")
    run.add_argument("--remote-workers", type=int, default=None, metavar="N",
                     help="remote workers to wait for with --master-bind (default 1)")
    run.add_argument("--allow-remote", action="append", default=[], metavar="HOST",
                     help="also allow traffic to HOST (default: only 127.0.0.1 and ::1)")
    run.add_argument("--variant", metavar="NAME",
                     help="run only this variant of the scenario (default: every variant)")
    worker = sub.add_parser("worker", help="join a run as a load-generator worker")
    worker.add_argument("scenario", type=Path, nargs="?", metavar="SCENARIO",
                        help="the scenario the master runs (remote workers)")
    worker.add_argument("--master", required=True, metavar="HOST:PORT")
    worker.add_argument("--variant", default=None, metavar="NAME")
    worker.add_argument("--allow-remote", action="append", default=[], metavar="HOST")
    worker.add_argument("--name", default=None, help=argparse.SUPPRESS)
    worker.add_argument("--scenario-json", type=Path, help=argparse.SUPPRESS)
    worker.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    val = sub.add_parser("validate", help="check a scenario file; prints OK or every problem")
    val.add_argument("scenario", type=Path, metavar="SCENARIO")
    rep = sub.add_parser("report", help="re-render the report of a run from its artifacts")
    rep.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    rep.add_argument("--price-book", metavar="NAME", help="re-price under another price book")
    price = sub.add_parser("price", help="re-price a finished run from its artifacts")
    price.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    price.add_argument("--price-book", metavar="NAME", help="price book name or YAML path")
    price.add_argument("--billing-model", choices=["instance", "serverless", "usage"])
    sub.add_parser("price-books", help="list the available price books")
    images = sub.add_parser("images", help="container images for the docker runtime")
    images.add_argument("action", choices=["bootstrap"],
                        help="bootstrap: build the images locally (no registry needed); cached")
    images.add_argument("--force", action="store_true", help="rebuild even when up to date")
    from harness.cli.gate import add_parsers

    add_parsers(sub)
    clean = sub.add_parser("cleanup", help="stop and remove what a killed harness left behind, "
                           "and mark its runs aborted")
    clean.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR",
                       help="runs to clean (default: every unfinished run under --reports)")
    clean.add_argument("--reports", type=Path, default=Path("reports"), metavar="DIR")
    clean.add_argument("--force", action="store_true",
                       help="clean even when the run's harness process still seems alive")
    return p


def main(argv: list[str] | None = None) -> NoReturn:
    # Until a command installs its own handlers (a run does, see harness.run.interrupt), SIGINT and
    # SIGTERM both raise KeyboardInterrupt (held while an import runs, see harness.signals): a
    # signal during start-up (parsing, imports) ends with exit 130 and one line, not SIGTERM's
    # default kill or a traceback.
    install_interrupt_handlers()
    try:
        code = _command(argv)
    except KeyboardInterrupt:
        take_held_signal()
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except Exception:
        # A library turned the interrupt into its own error (pydantic's serializer, a C
        # extension's init): the signal is still held, so it is the interrupt all the same.
        if take_held_signal() is None:
            raise
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    # Everything is stopped and written: a signal arriving while the interpreter shuts down
    # must not turn this exit code into a kill. Ignored, not blocked: a mask is per thread (a
    # library's thread would still take the signal), and interpreter shutdown resets Python
    # handlers to the default action but leaves SIG_IGN alone.
    ignore_interrupts()
    sys.exit(code)


def _command(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("run", "worker"):
        from gevent import monkey  # Locust needs gevent's patches before anything else

        monkey.patch_all()
        from harness.run.safety import install_connect_guard

        install_connect_guard(args.allow_remote)
    from harness.cli.commands import dispatch
    from harness.errors import HarnessError

    try:
        return dispatch(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code

