"""HTTP client of the payments downstream: one keep-alive connection per server thread.

Every attempt counts ``counters.external("payments")`` — it is what the vendor bills. A 5xx,
a timeout or a broken connection raises :class:`PaymentUnavailable` (worth retrying); any
other non-2xx raises :class:`PaymentRejected` (not retried).
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from harness.instrument import counters

log = logging.getLogger("shop.payments")

VENDOR = "payments"


class PaymentError(Exception):
    """A charge did not succeed."""


class PaymentUnavailable(PaymentError):
    """The downstream failed or did not answer in time: a retry may succeed."""


class PaymentRejected(PaymentError):
    """The downstream refused the charge: retrying would not help."""


@dataclass(frozen=True, slots=True)
class Charge:
    charge_id: str
    amount_cents: int


class PaymentsClient:
    """``POST <base>/charge`` with a per-thread ``http.client`` connection."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._path = (parts.path.rstrip("/") or "") + "/charge"
        self._timeout_s = timeout_s
        self._local = threading.local()

    def charge(self, order_id: int, amount_cents: int) -> Charge:
        """One attempt at charging ``amount_cents`` for ``order_id``."""
        counters.external(VENDOR)
        body = json.dumps({"order_id": order_id, "amount_cents": amount_cents}).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"order-{order_id}"}
        log.debug("payments POST %s %s", self._path, body.decode())
        status, payload = self._post(body, headers)
        log.debug("payments -> %s %s", status, payload[:512].decode("utf-8", "replace"))
        if status >= 500:
            raise PaymentUnavailable(f"payments answered {status}")
        if not 200 <= status < 300:
            raise PaymentRejected(f"payments answered {status}")
        try:
            data = json.loads(payload)
            return Charge(charge_id=str(data["charge_id"]), amount_cents=amount_cents)
        except (ValueError, KeyError, TypeError) as exc:
            raise PaymentRejected(f"payments sent an unreadable answer: {exc}") from exc

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        conn = self._connection()
        try:
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self._local.conn = None
            raise PaymentUnavailable(f"payments unreachable: {exc!r}") from exc

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
            self._local.conn = conn
        return conn


class RequestsPaymentsClient(PaymentsClient):
    """The same client over ``requests`` (one keep-alive session per server thread), which
    OpenTelemetry's ``requests`` instrumentation sees: used with ``SHOP_INSTRUMENT=off``."""

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        import requests  # only the OTel variant needs it

        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        url = f"http://{self._host}:{self._port}{self._path}"
        try:
            response = session.post(url, data=body, headers=headers, timeout=self._timeout_s)
            return response.status_code, response.content
        except requests.RequestException as exc:
            session.close()
            self._local.session = None
            raise PaymentUnavailable(f"payments unreachable: {exc!r}") from exc
