"""``python -m targets.calibrated``: serve the calibrated app on ``PORT`` until SIGTERM/SIGINT.

``CALIBRATED_DB_URL`` (optional): the PostgreSQL for ``reads``/``writes``; the tables are
created and seeded at startup. ``CALIBRATED_STATS_FILE`` (optional): at exit, write there the
calls served per path and PostgreSQL's own counts (``scans`` of ``calib_items``, ``inserts``
into ``calib_log``) at startup and at exit, so their difference is the run's DB work as the
database saw it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from harness.errors import HarnessError, TargetError
from harness.instrument import WSGIMiddleware, serve_wsgi
from targets.calibrated.app import CalibratedApp
from targets.calibrated.db import Database


def write_stats(path: Path, document: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(document), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise TargetError(f"cannot write CALIBRATED_STATS_FILE {path}: {exc.strerror}") from exc


def main() -> int:
    url = os.environ.get("CALIBRATED_DB_URL") or None
    stats_file = os.environ.get("CALIBRATED_STATS_FILE")
    db = Database(url) if url else None
    try:
        before: dict[str, int] = {}
        if db is not None:
            db.prepare(timeout_s=30.0)
            before = db.server_counts()
        app = CalibratedApp(db)
        serve_wsgi(WSGIMiddleware(app), threads=8)
        after: dict[str, int] = {}
        if db is not None:
            db.close()
            after = db.server_counts()
        if stats_file:
            write_stats(Path(stats_file), {**app.stats(), "db_before": before, "db_after": after})
    except HarnessError as exc:
        print(f"targets.calibrated: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
