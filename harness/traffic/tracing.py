"""The W3C ``traceparent`` on requests of a user's own locustfile (with ``otel.enabled``).

The scenario's own requests get it in :mod:`harness.traffic.calls`. A locustfile's user
classes are subclassed so that, once Locust has built a user's ``client`` (``FastHttpSession``
or ``HttpSession``), its ``request`` — which ``get``, ``post``, … call — adds a new sampled
``traceparent`` to the headers and its trace id to the request's ``context`` (which the
recorder keeps as ``trace_id``). A ``traceparent`` the user's code set itself is kept as it is.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

__all__ = ["traced_user"]


def traced_user(cls: type[Any], rng: random.Random) -> type[Any]:
    """A subclass of the user class ``cls`` whose client sends a traceparent per request."""
    base_init = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base_init(self, *args, **kwargs)
        client = getattr(self, "client", None)
        if client is not None and callable(getattr(client, "request", None)):
            client.request = _traced_request(client.request, rng)

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__})


def _traced_request(request: Callable[..., Any], rng: random.Random) -> Callable[..., Any]:
    def traced(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        headers = dict(kwargs.get("headers") or {})
        context = dict(kwargs.get("context") or {})
        given = next((v for k, v in headers.items() if k.lower() == "traceparent"), None)
        if given is None:
            ids = f"{rng.getrandbits(192) | 1:048x}"
            headers["traceparent"] = f"00-{ids[:32]}-{ids[32:]}-01"
            context.setdefault("trace_id", ids[:32])
        elif len(given) >= 35:
            context.setdefault("trace_id", given[3:35].lower())
        kwargs["headers"], kwargs["context"] = headers, context
        return request(method, url, *args, **kwargs)

    return traced
