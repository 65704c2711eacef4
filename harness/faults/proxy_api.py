"""The HTTP API of the embedded fault proxy — the routes, bodies and status codes of Toxiproxy 2.

===========================================  ======================================
``GET /version``                             ``{"version": ...}``
``POST /reset``                              remove all toxics, enable all proxies; 204
``GET /proxies``                             ``{name: proxy}``
``POST /proxies``                            create ``{name, upstream, listen?, enabled?}``; 201
``GET|POST|PATCH|DELETE /proxies/{name}``    show / update ``{listen?, upstream?, enabled?}`` /
                                             delete (204)
``GET|POST /proxies/{name}/toxics``          list / create a toxic (200)
``GET|POST|PATCH|DELETE .../toxics/{toxic}`` show / update ``{attributes?, toxicity?}`` /
                                             delete (204)
===========================================  ======================================

Errors are ``{"error": message, "status": code}``: 400 bad JSON or fields, 404 unknown proxy
or toxic, 405 wrong method, 409 duplicate name or a listen address in use. A proxy shows its
counters under ``stats``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from harness.faults.proxy_http import FramingError, Head, parse_head
from harness.faults.proxy_server import Address, FaultProxy
from harness.faults.toxics import ApiProblem, parse_toxic, updated_toxic, validate_body

log = logging.getLogger(__name__)
VERSION = "cost-harness-fault-proxy 1.0"
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Call:
    """One API request: path parameters and the raw body."""

    params: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiProblem(400, f"bad request body: not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ApiProblem(400, "bad request body: expected a JSON object")
        return data


Reply = tuple[int, Any]  # status, JSON payload (None: no body)
Handler = Callable[[FaultProxy, Call], Awaitable[Reply]]


class _ProxyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(min_length=1)]
    upstream: Annotated[str, Field(min_length=1)]
    listen: str = "127.0.0.1:0"
    enabled: bool = True


class _ProxyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = None  # accepted (clients echo it back) but a proxy cannot be renamed
    upstream: str | None = None
    listen: str | None = None
    enabled: bool | None = None


async def _version(fp: FaultProxy, call: Call) -> Reply:
    return 200, {"version": VERSION}


async def _reset(fp: FaultProxy, call: Call) -> Reply:
    await fp.reset()
    return 204, None


async def _list_proxies(fp: FaultProxy, call: Call) -> Reply:
    return 200, {name: proxy.to_json() for name, proxy in fp.proxies.items()}


async def _create_proxy(fp: FaultProxy, call: Call) -> Reply:
    spec = validate_body(_ProxyBody, call.json())
    proxy = await fp.create(spec.name, Address.parse(spec.listen, "listen", listen=True),
                            Address.parse(spec.upstream, "upstream", listen=False), spec.enabled)
    return 201, proxy.to_json()


async def _show_proxy(fp: FaultProxy, call: Call) -> Reply:
    return 200, fp.get(call.params["proxy"]).to_json()


async def _update_proxy(fp: FaultProxy, call: Call) -> Reply:
    proxy = fp.get(call.params["proxy"])
    spec = validate_body(_ProxyUpdate, call.json())
    listen = proxy.listen if spec.listen is None else Address.parse(spec.listen, "listen", True)
    upstream = proxy.upstream if spec.upstream is None else Address.parse(
        spec.upstream, "upstream", False)
    enabled = proxy.enabled if spec.enabled is None else spec.enabled
    await fp.update(proxy, listen, upstream, enabled)
    return 200, proxy.to_json()


async def _delete_proxy(fp: FaultProxy, call: Call) -> Reply:
    await fp.delete(call.params["proxy"])
    return 204, None


async def _list_toxics(fp: FaultProxy, call: Call) -> Reply:
    return 200, [toxic.to_json() for toxic in fp.get(call.params["proxy"]).toxics]


async def _create_toxic(fp: FaultProxy, call: Call) -> Reply:
    proxy = fp.get(call.params["proxy"])
    toxic = parse_toxic(call.json())
    proxy.add_toxic(toxic)
    return 200, toxic.to_json()


async def _show_toxic(fp: FaultProxy, call: Call) -> Reply:
    return 200, fp.get(call.params["proxy"]).toxic(call.params["toxic"]).to_json()


async def _update_toxic(fp: FaultProxy, call: Call) -> Reply:
    proxy = fp.get(call.params["proxy"])
    old = proxy.toxic(call.params["toxic"])
    new = updated_toxic(old, call.json())
    proxy.replace_toxic(old, new)
    return 200, new.to_json()


async def _delete_toxic(fp: FaultProxy, call: Call) -> Reply:
    fp.get(call.params["proxy"]).remove_toxic(call.params["toxic"])
    return 204, None


_NAME = r"(?P<{}>[^/]+)"
ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (re.compile(r"/version"), {"GET": _version}),
    (re.compile(r"/reset"), {"POST": _reset}),
    (re.compile(r"/proxies"), {"GET": _list_proxies, "POST": _create_proxy}),
    (re.compile("/proxies/" + _NAME.format("proxy")),
     {"GET": _show_proxy, "POST": _update_proxy, "PATCH": _update_proxy,
      "DELETE": _delete_proxy}),
    (re.compile("/proxies/" + _NAME.format("proxy") + "/toxics"),
     {"GET": _list_toxics, "POST": _create_toxic}),
    (re.compile("/proxies/" + _NAME.format("proxy") + "/toxics/" + _NAME.format("toxic")),
     {"GET": _show_toxic, "POST": _update_toxic, "PATCH": _update_toxic,
      "DELETE": _delete_toxic}),
]


async def dispatch(fp: FaultProxy, method: str, target: str, body: bytes) -> Reply:
    """Route one request; every failure becomes a JSON error reply."""
    path = urlsplit(target).path.rstrip("/") or "/"
    for pattern, handlers in ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        handler = handlers.get(method)
        if handler is None:
            return _error(405, f"method {method} not allowed on {path}")
        call = Call({k: unquote(v) for k, v in match.groupdict().items()}, body)
        try:
            return await handler(fp, call)
        except ApiProblem as problem:
            return _error(problem.status, problem.message)
        except Exception as exc:  # a bug here must not take the proxy down
            log.exception("%s %s failed", method, path)
            return _error(500, f"internal error: {type(exc).__name__}: {exc}")
    return _error(404, f"no such endpoint: {path}")


def _error(status: int, message: str) -> Reply:
    return status, {"error": message, "status": status}


async def start_api(fp: FaultProxy, host: str, port: int) -> asyncio.Server:
    """Serve the API on ``host:port`` (port 0: the kernel picks)."""
    return await asyncio.start_server(partial(_serve_connection, fp), host, port,
                                      limit=MAX_HEAD_BYTES, reuse_address=True)


async def _serve_connection(fp: FaultProxy, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
    try:
        while await _serve_one(fp, reader, writer):
            pass
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def _serve_one(fp: FaultProxy, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> bool:
    """Answer one request; False when the connection should close."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return False
    except asyncio.LimitOverrunError:
        await _respond(writer, _error(431, "request head too large"), keep_alive=False)
        return False
    try:
        head = parse_head(raw, request=True)
        body = await _read_body(reader, head)
    except FramingError as exc:
        await _respond(writer, _error(400, str(exc)), keep_alive=False)
        return False
    except ApiProblem as problem:
        await _respond(writer, _error(problem.status, problem.message), keep_alive=False)
        return False
    reply = await dispatch(fp, head.method, head.start[1], body)
    if head.method != "GET":
        log.info("%s %s -> %d", head.method, head.start[1], reply[0])
    keep_alive = not head.wants_close()
    await _respond(writer, reply, keep_alive)
    return keep_alive


async def _read_body(reader: asyncio.StreamReader, head: Head) -> bytes:
    if "transfer-encoding" in head.headers:
        raise ApiProblem(411, "send the request body with Content-Length, not chunked")
    length_text = head.headers.get("content-length", "0").strip()
    if not length_text.isdigit():
        raise ApiProblem(400, f"bad Content-Length {length_text!r}")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise ApiProblem(413, f"request body over {MAX_BODY_BYTES} bytes")
    return await reader.readexactly(length)


async def _respond(writer: asyncio.StreamWriter, reply: Reply, keep_alive: bool) -> None:
    status, payload = reply
    body = b"" if payload is None else json.dumps(payload).encode() + b"\n"
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
             f"Content-Length: {len(body)}",
             f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    if payload is not None:
        lines.append("Content-Type: application/json")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
