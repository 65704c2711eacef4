"""The payments HTTP API (Flask, served through ``harness.instrument``).

======================  ============================================================
``POST /charge``        JSON ``{order_id, amount_cents}`` → 200 ``{charge_id, ...}``,
                        503 when it fails, 504 after a hold (mode ``timeout``),
                        400 for a malformed charge
``POST /control``       JSON with any of ``latency_ms, jitter_ms, fail_rate, mode,
                        slow_ms, hold_ms`` → 200 with the new settings, or 400
``GET /stats``          ``{attempted, succeeded, failed, timed_out}``
``GET /health``         liveness
======================  ============================================================
"""

from __future__ import annotations

import itertools
import json
import logging
import time

from flask import Flask, Response, request

from targets.payments.behaviour import Behaviour, BehaviourError

log = logging.getLogger("payments")


def json_response(data: object, status: int = 200) -> Response:
    return Response(json.dumps(data, separators=(",", ":")), status, mimetype="application/json")


def create_app(behaviour: Behaviour) -> Flask:
    app = Flask("payments")
    charge_ids = itertools.count(1)

    @app.get("/health")
    def health() -> Response:
        return Response("ok", mimetype="text/plain")

    @app.get("/stats")
    def stats() -> Response:
        return json_response(behaviour.counts())

    @app.post("/control")
    def control() -> Response:
        changes = request.get_json(silent=True)
        if not isinstance(changes, dict):
            return json_response({"error": "expected a JSON object of settings"}, 400)
        try:
            settings = behaviour.update(changes)
        except BehaviourError as exc:
            return json_response({"error": str(exc)}, 400)
        log.warning("behaviour changed: %s", settings)
        return json_response(behaviour.describe())

    @app.post("/charge")
    def charge() -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            body = {}
        amount = body.get("amount_cents")
        if type(amount) is not int or amount < 0:
            return json_response({"error": "expected JSON {order_id, amount_cents: int >= 0}"}, 400)
        outcome, wait_s, release = behaviour.plan()
        if outcome == "timed_out":
            release.wait(wait_s)
            return json_response({"error": "gateway timeout"}, 504)
        time.sleep(wait_s)
        if outcome == "failed":
            return json_response({"error": "payments temporarily unavailable"}, 503)
        charge_id = f"ch_{next(charge_ids):010d}"
        return json_response({"charge_id": charge_id, "order_id": body.get("order_id"),
                              "amount_cents": amount, "status": "succeeded"})  # fmt: skip

    return app
