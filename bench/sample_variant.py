"""The sample target with or without the harness's instrumentation, for ``target_overhead.py``.

    PORT=8000 .venv/bin/python bench/sample_variant.py bare|instrumented

``bare`` serves ``targets.sample``'s app as is; ``instrumented`` wraps it in
``harness.instrument.WSGIMiddleware`` exactly as ``python -m targets.sample`` does (and, when
``HARNESS_PYROSCOPE_URL`` is set, the middleware starts the Pyroscope agent and tags samples).
"""

from __future__ import annotations

import sys

from harness.instrument import WSGIMiddleware, serve_wsgi
from targets.sample.app import SampleApp


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in ("bare", "instrumented"):
        raise SystemExit("usage: sample_variant.py bare|instrumented")
    app = SampleApp()
    serve_wsgi(app if sys.argv[1] == "bare" else WSGIMiddleware(app), threads=8)


if __name__ == "__main__":
    main()
