"""The shop's HTTP API (Flask, served by waitress through ``harness.instrument``).

======================  ==============================================================
``GET /health``         liveness, no backing service touched
``GET /products/<id>``  cache-aside: cache first, PostgreSQL on a miss, then cached 300 s
``GET /search?q=``      BM25 over the in-memory catalog (CPU-heavy, see ``search.py``)
``POST /checkout``      ``{product_id, qty}``: read product, insert order, charge payments
                        with the retry variant, record the outcome → 201, or 502
``GET /catalog/export`` ``?limit=`` products as one JSON array; gzip-compressed when the
                        payload variant is ``gzip`` and the client accepts it
``GET /stats``          requests served per route (``/stats`` and ``/health`` excluded)
======================  ==============================================================
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import TypeGuard

from flask import Flask, Response, g, request

from targets.shop.cache import ProductCache
from targets.shop.db import Database, DatabaseUnavailable
from targets.shop.payments_client import PaymentError, PaymentsClient
from targets.shop.resilience import RetryPolicy
from targets.shop.search import SearchIndex
from targets.shop.variants import Payload

log = logging.getLogger("shop.http")

EXPORT_DEFAULT = 1000
EXPORT_MAX = 20000
MAX_QTY = 100
GZIP_LEVEL = 6
UNCOUNTED = frozenset({"/stats", "/health"})


@dataclass(frozen=True, slots=True)
class Shop:
    """The shop's collaborators, built once by ``__main__``."""

    db: Database
    cache: ProductCache
    payments: PaymentsClient
    policy: RetryPolicy
    index: SearchIndex
    payload: Payload


class RouteStats:
    """Requests served per route, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_route: Counter[str] = Counter()

    def add(self, route: str) -> None:
        with self._lock:
            self._by_route[route] += 1

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            by_route = dict(self._by_route)
        return {"served": sum(by_route.values()), "by_path": by_route}


def json_response(data: object, status: int = 200) -> Response:
    return Response(json.dumps(data, separators=(",", ":")), status, mimetype="application/json")


def create_app(shop: Shop) -> Flask:
    app = Flask("shop")
    stats = RouteStats()

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        if route not in UNCOUNTED:
            stats.add(route)
        elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        log.info("%s %s %d %.1fms", request.method, request.full_path.rstrip("?"),
                 response.status_code, elapsed_ms)  # fmt: skip
        return response

    @app.errorhandler(DatabaseUnavailable)
    def _db_down(exc: DatabaseUnavailable) -> Response:
        log.warning("database unavailable: %s", exc)
        return json_response({"error": "database unavailable"}, 503)

    @app.get("/health")
    def health() -> Response:
        return Response("ok", mimetype="text/plain")

    @app.get("/stats")
    def route_stats() -> Response:
        return json_response(stats.snapshot())

    @app.get("/products/<int:product_id>")
    def product(product_id: int) -> Response:
        return product_view(shop, product_id)

    @app.get("/search")
    def search() -> Response:
        results = shop.index.search(request.args.get("q", ""))
        log.debug("search q=%r -> %s", request.args.get("q", ""), results)
        return json_response({"query": request.args.get("q", ""), "results": results})

    @app.post("/checkout")
    def checkout() -> Response:
        return checkout_view(shop)

    @app.get("/catalog/export")
    def export() -> Response:
        return export_view(shop)

    return app


def product_view(shop: Shop, product_id: int) -> Response:
    payload = shop.cache.get(product_id)
    if payload is None:
        row = shop.db.product(product_id)
        if row is None:
            return json_response({"error": f"product {product_id} not found"}, 404)
        payload = json.dumps(row, separators=(",", ":")).encode()
        shop.cache.put(product_id, payload)
    log.debug("product %d payload %r", product_id, payload)
    return Response(payload, 200, mimetype="application/json")


def checkout_view(shop: Shop) -> Response:
    body = request.get_json(silent=True)
    log.debug("checkout body %r", body)
    order = _parse_order(body)
    if order is None:
        msg = f"expected JSON {{product_id: int >= 1, qty: int 1..{MAX_QTY}}}"
        return json_response({"error": msg}, 400)
    product_id, qty = order
    row = shop.db.product(product_id)
    if row is None:
        return json_response({"error": f"product {product_id} not found"}, 404)
    amount = int(row["price_cents"]) * qty
    order_id = shop.db.create_order(product_id, qty, amount)
    try:
        charge = shop.policy.call(lambda: shop.payments.charge(order_id, amount))
    except PaymentError as exc:
        shop.db.set_order_status(order_id, "payment_failed")
        log.warning("order %d: payment failed: %s", order_id, exc)
        return json_response({"order_id": order_id, "status": "payment_failed",
                              "error": str(exc)}, 502)  # fmt: skip
    shop.db.set_order_status(order_id, "paid")
    return json_response({"order_id": order_id, "status": "paid", "charge_id": charge.charge_id,
                          "amount_cents": amount}, 201)  # fmt: skip


def _parse_order(body: object) -> tuple[int, int] | None:
    if not isinstance(body, dict):
        return None
    product_id, qty = body.get("product_id"), body.get("qty", 1)
    if _is_int(product_id) and _is_int(qty) and product_id >= 1 and 1 <= qty <= MAX_QTY:
        return product_id, qty
    return None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def export_view(shop: Shop) -> Response:
    limit = request.args.get("limit", default=EXPORT_DEFAULT, type=int)
    if limit is None or not 1 <= limit <= EXPORT_MAX:
        return json_response({"error": f"limit must be an integer from 1 to {EXPORT_MAX}"}, 400)
    body = json.dumps(shop.db.export(limit), separators=(",", ":")).encode()
    log.debug("export limit=%d bytes=%d head=%r", limit, len(body), body[:2048])
    response = Response(body, 200, mimetype="application/json")
    if shop.payload == "gzip":
        response.vary.add("Accept-Encoding")
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.set_data(gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0))
            response.headers["Content-Encoding"] = "gzip"
    return response
