"""PostgreSQL work of known size for the calibrated target, and PostgreSQL's own count of it.

A read is one ``SELECT`` by primary key on ``calib_items`` (one table scan as PostgreSQL counts
scans: ``idx_scan`` or ``seq_scan``); a write is one ``INSERT`` into ``calib_log`` (one
``n_tup_ins``). Each counts itself with ``counters.db_read()`` / ``counters.db_write()``, so the
``Server-Timing`` header and the server's statistics can be compared after the run.
"""

from __future__ import annotations

import threading
import time
from typing import LiteralString

import psycopg

from harness.errors import TargetError
from harness.instrument import counters

ITEMS = 1000
SCHEMA: tuple[LiteralString, ...] = (
    "CREATE TABLE IF NOT EXISTS calib_items (id integer PRIMARY KEY, v integer NOT NULL)",
    "CREATE TABLE IF NOT EXISTS calib_log (id bigserial PRIMARY KEY, n integer NOT NULL)",
)
SEED_SQL = (
    "INSERT INTO calib_items (id, v) SELECT g, g * 7 FROM generate_series(1, %s) AS g "
    "ON CONFLICT (id) DO NOTHING"
)
READ_SQL = "SELECT v FROM calib_items WHERE id = %s"
WRITE_SQL = "INSERT INTO calib_log (n) VALUES (%s)"
STATS_SQL = (
    "SELECT relname, coalesce(seq_scan, 0) + coalesce(idx_scan, 0), n_tup_ins "
    "FROM pg_stat_user_tables WHERE relname IN ('calib_items', 'calib_log')"
)


class Database:
    """Autocommit connections, one per server thread, all closed by :meth:`close`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[psycopg.Connection[tuple[object, ...]]] = []

    def connect(self, timeout_s: float = 0.0) -> psycopg.Connection[tuple[object, ...]]:
        """A new autocommit connection, retried for ``timeout_s`` while the server starts."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return psycopg.connect(self.url, autocommit=True, connect_timeout=5,
                                       application_name="calibrated")  # fmt: skip
            except psycopg.OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise TargetError(f"cannot connect to {self.url}: {exc}") from exc
                time.sleep(0.2)

    def prepare(self, timeout_s: float) -> None:
        """Create and seed the tables (startup only, before any request)."""
        with self.connect(timeout_s) as conn:
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute(SEED_SQL, (ITEMS,))
            conn.execute("ANALYZE calib_items")

    def work(self, reads: int, writes: int, seed: int) -> None:
        """``reads`` primary-key SELECTs and ``writes`` INSERTs, each counted."""
        conn = self._thread_connection()
        for index in range(reads):
            counters.db_read()
            conn.execute(READ_SQL, ((seed + index) % ITEMS + 1,)).fetchone()
        for index in range(writes):
            counters.db_write()
            conn.execute(WRITE_SQL, (seed + index,))

    def _thread_connection(self) -> psycopg.Connection[tuple[object, ...]]:
        conn: psycopg.Connection[tuple[object, ...]] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self.connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection (PostgreSQL publishes a backend's counts when it leaves)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()

    def server_counts(self) -> dict[str, int]:
        """PostgreSQL's own counts: ``scans`` of calib_items, ``inserts`` into calib_log and
        ``rows`` in calib_log. Call after :meth:`close`; waits until two reads agree, since a
        closing backend publishes its counts a moment after the client let go."""
        last: dict[str, int] = {}
        with self.connect(timeout_s=5) as conn:
            for _ in range(25):
                rows = conn.execute(STATS_SQL).fetchall()
                by_name = {str(r[0]): (int(str(r[1] or 0)), int(str(r[2] or 0))) for r in rows}
                count = conn.execute("SELECT count(*) FROM calib_log").fetchone()
                now = {"scans": by_name.get("calib_items", (0, 0))[0],
                       "inserts": by_name.get("calib_log", (0, 0))[1],
                       "rows": int(str(count[0])) if count else 0}  # fmt: skip
                if now == last and now["inserts"] >= now["rows"]:
                    break
                last = now
                time.sleep(0.1)
        return last
