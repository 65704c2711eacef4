"""The shop's PostgreSQL access: one autocommit connection per server thread.

Each public query counts itself with ``counters.db_read()`` / ``counters.db_write()`` — one per
statement sent, which is what PostgreSQL sees too: a product read is one index scan on
``products``, an order write is one inserted or updated ``orders`` row.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
from psycopg.rows import dict_row

from harness.instrument import counters

log = logging.getLogger("shop.db")

Row = dict[str, Any]

PRODUCT_SQL = "SELECT id, name, description, price_cents, stock FROM products WHERE id = %s"
EXPORT_SQL = "SELECT id, name, description, price_cents, stock FROM products ORDER BY id LIMIT %s"
CATALOG_SQL = "SELECT id, name, description FROM products"
INSERT_ORDER_SQL = (
    "INSERT INTO orders (product_id, qty, amount_cents) VALUES (%s, %s, %s) RETURNING id"
)
ORDER_STATUS_SQL = "UPDATE orders SET status = %s WHERE id = %s"


def load_catalog(conn: psycopg.Connection[Row]) -> list[Row]:
    """Every product's searchable text (startup only, not part of a request)."""
    return conn.execute(CATALOG_SQL).fetchall()


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached or dropped the connection."""


class Database:
    """Per-thread connections to one database; a broken connection is replaced on next use."""

    def __init__(self, url: str, application_name: str) -> None:
        self._url = url
        self._application_name = application_name
        self._local = threading.local()

    def connect(self, timeout_s: float = 10.0) -> psycopg.Connection[Row]:
        """A new autocommit connection, retried until ``timeout_s`` while the server starts."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return psycopg.connect(
                    self._url,
                    autocommit=True,
                    row_factory=dict_row,
                    application_name=self._application_name,
                    connect_timeout=5,
                )
            except psycopg.OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise DatabaseUnavailable(f"cannot connect to {self._url}: {exc}") from exc
                time.sleep(0.2)

    def product(self, product_id: int) -> Row | None:
        counters.db_read()
        rows = self._query(PRODUCT_SQL, (product_id,))
        return rows[0] if rows else None

    def export(self, limit: int) -> list[Row]:
        counters.db_read()
        return self._query(EXPORT_SQL, (limit,))

    def create_order(self, product_id: int, qty: int, amount_cents: int) -> int:
        counters.db_write()
        rows = self._query(INSERT_ORDER_SQL, (product_id, qty, amount_cents))
        return int(rows[0]["id"])

    def set_order_status(self, order_id: int, status: str) -> None:
        counters.db_write()
        self._query(ORDER_STATUS_SQL, (status, order_id))

    def _query(self, sql: str, params: tuple[object, ...]) -> list[Row]:
        log.debug("SQL %s params=%r", sql, params)
        conn = self._thread_connection()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        except psycopg.OperationalError as exc:
            self._local.conn = None
            conn.close()
            raise DatabaseUnavailable(str(exc).strip()) from exc

    def _thread_connection(self) -> psycopg.Connection[Row]:
        conn: psycopg.Connection[Row] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self.connect(timeout_s=0)
            self._local.conn = conn
        return conn
