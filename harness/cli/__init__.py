"""The command line, on top of every stage: arguments in, an exit code out.

``main`` parses the arguments, calls the library and maps the outcome to an exit code (0 ok,
1 a gate failed, 2 bad input, 3 the run failed, 130 interrupted); it is the only place that
exits. ``commands`` holds one handler per command, ``gate`` the gate's and baselines'.
"""

from harness.cli.main import main

__all__ = ["main"]
