"""A client of the Toxiproxy HTTP API: the embedded fault proxy or a real Toxiproxy server.

Calls that inject or set up a fault raise :class:`~harness.errors.FaultError`; calls that
revert one (``enable``, ``remove_toxic``, ``delete_proxy``, ``reset``) raise
:class:`~harness.errors.RollbackFailed`. Messages name the server, the call and its answer.
Only the standard library is used (``http.client``), so the client also works under gevent's
monkey-patching in the harness process. The ``http_error`` toxic exists only in the embedded
proxy; a real Toxiproxy answers it with 400 "invalid toxic type".
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from harness.errors import FaultError, RollbackFailed

DEFAULT_URL = "http://127.0.0.1:8474"


@dataclass(frozen=True)
class ToxicInfo:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToxicInfo:
        return cls(str(data["name"]), str(data["type"]), str(data.get("stream", "downstream")),
                   float(data.get("toxicity", 1.0)), dict(data.get("attributes") or {}))


@dataclass(frozen=True)
class ProxyInfo:
    name: str
    listen: str  # HOST:PORT the proxy really listens on (port 0 resolved)
    upstream: str
    enabled: bool
    toxics: tuple[ToxicInfo, ...] = ()
    stats: dict[str, int] = field(default_factory=dict)  # embedded proxy only

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProxyInfo:
        toxics = tuple(ToxicInfo.from_json(t) for t in data.get("toxics") or [])
        return cls(str(data["name"]), str(data["listen"]), str(data["upstream"]),
                   bool(data["enabled"]), toxics, dict(data.get("stats") or {}))


class ToxiproxyClient:
    """Blocking calls to ``base_url`` (``http://HOST:PORT``, ``toxiproxy://HOST:PORT`` or
    ``HOST:PORT``); one short-lived connection per call."""

    def __init__(self, base_url: str = DEFAULT_URL, timeout_s: float = 5.0) -> None:
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parts.scheme not in ("http", "toxiproxy") or not parts.hostname:
            raise FaultError(f"fault proxy URL {base_url!r}: expected http://HOST:PORT "
                             "or toxiproxy://HOST:PORT")
        try:
            self._port = parts.port or 8474
        except ValueError as exc:
            raise FaultError(f"fault proxy URL {base_url!r}: {exc}") from exc
        self._host = parts.hostname
        self._timeout_s = timeout_s
        host = f"[{self._host}]" if ":" in self._host else self._host
        self.base_url = f"http://{host}:{self._port}"

    def version(self) -> str:
        answer = self._call("GET", "/version", None, FaultError)
        return str(answer.get("version") if isinstance(answer, dict) else answer).strip()

    def proxies(self) -> dict[str, ProxyInfo]:
        answer = self._call("GET", "/proxies", None, FaultError)
        return {name: ProxyInfo.from_json(data) for name, data in answer.items()}

    def proxy(self, name: str) -> ProxyInfo:
        return ProxyInfo.from_json(self._call("GET", _proxy_path(name), None, FaultError))

    def create_proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0",
                     enabled: bool = True) -> ProxyInfo:
        body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
        return ProxyInfo.from_json(self._call("POST", "/proxies", body, FaultError))

    def delete_proxy(self, name: str, missing_ok: bool = False) -> None:
        self._call("DELETE", _proxy_path(name), None, RollbackFailed, missing_ok)

    def disable(self, name: str) -> ProxyInfo:
        """The "down" fault: refuse new connections and close open ones."""
        answer = self._call("POST", _proxy_path(name), {"enabled": False}, FaultError)
        return ProxyInfo.from_json(answer)

    def enable(self, name: str) -> ProxyInfo:
        answer = self._call("POST", _proxy_path(name), {"enabled": True}, RollbackFailed)
        return ProxyInfo.from_json(answer)

    def add_toxic(self, proxy: str, toxic_type: str, attributes: dict[str, Any] | None = None, *,
                  name: str | None = None, stream: str = "downstream",
                  toxicity: float = 1.0) -> ToxicInfo:
        body: dict[str, Any] = {"type": toxic_type, "stream": stream, "toxicity": toxicity,
                                "attributes": attributes or {}}
        if name:
            body["name"] = name
        answer = self._call("POST", _proxy_path(proxy) + "/toxics", body, FaultError)
        return ToxicInfo.from_json(answer)

    def update_toxic(self, proxy: str, name: str, attributes: dict[str, Any] | None = None,
                     toxicity: float | None = None) -> ToxicInfo:
        body: dict[str, Any] = {"attributes": attributes or {}}
        if toxicity is not None:
            body["toxicity"] = toxicity
        answer = self._call("POST", _toxic_path(proxy, name), body, FaultError)
        return ToxicInfo.from_json(answer)

    def remove_toxic(self, proxy: str, name: str, missing_ok: bool = False) -> None:
        self._call("DELETE", _toxic_path(proxy, name), None, RollbackFailed, missing_ok)

    def reset(self) -> None:
        """Remove every toxic of every proxy and enable them all."""
        self._call("POST", "/reset", None, RollbackFailed)

    def _call(self, method: str, path: str, body: dict[str, Any] | None,
              error: type[FaultError], missing_ok: bool = False) -> Any:
        where = f"fault proxy {self.base_url}: {method} {path}"
        payload = None if body is None else json.dumps(body).encode()
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
        try:
            conn.request(method, path, body=payload, headers={
                "Content-Type": "application/json", "Accept": "application/json"})
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise error(f"{where} failed: {exc or type(exc).__name__}") from exc
        finally:
            conn.close()
        if response.status == 404 and missing_ok:
            return None
        if response.status >= 400:
            raise error(f"{where} -> {response.status}: {_error_message(raw)}")
        return _decode(raw)


def _proxy_path(name: str) -> str:
    return "/proxies/" + quote(name, safe="")


def _toxic_path(proxy: str, name: str) -> str:
    return f"{_proxy_path(proxy)}/toxics/{quote(name, safe='')}"


def _decode(raw: bytes) -> Any:
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # e.g. /version of Toxiproxy before 2.6 is plain text


def _error_message(raw: bytes) -> str:
    answer = _decode(raw)
    if isinstance(answer, dict) and "error" in answer:
        return str(answer["error"])
    return str(answer or "(no body)")[:500]
