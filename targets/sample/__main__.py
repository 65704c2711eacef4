"""``python -m targets.sample``: serve the sample app on ``PORT`` until SIGTERM/SIGINT.

Then, if ``SAMPLE_STATS_FILE`` is set, write the request counts of ``/stats`` there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.instrument import WSGIMiddleware, serve_wsgi
from targets.sample.app import SampleApp, cpu_factor_from_env


def main() -> int:
    try:
        sample = SampleApp(cpu_factor_from_env())
        serve_wsgi(WSGIMiddleware(sample), threads=8)
        stats_file = os.environ.get("SAMPLE_STATS_FILE")
        if stats_file:
            sample.write_stats(Path(stats_file))
    except HarnessError as exc:
        print(f"targets.sample: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
