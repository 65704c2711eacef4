"""HTTP health probes shared by the local and docker runtimes.

A probe is ``GET <path>`` on 127.0.0.1:PORT. :class:`HealthWatch` remembers what the last
answers were, so a wait can

* say what it got when it gives up (``answered 503 Service Unavailable: "warming up"``), and
* give up early on a *steady* client error: the same 4xx on :data:`STEADY_PROBES` probes in a
  row spanning at least :data:`STEADY_S` seconds. A wrong health path (404), a missing auth
  header (401/403) or a wrong method (405) will not go away by waiting for the startup
  timeout. 5xx answers and refused connections keep the wait going: apps answer 503 while
  they warm up. 408, 425 and 429 are transient by definition and keep it going too.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass

PROBE_TIMEOUT_S = 2.0
STEADY_PROBES = 3
STEADY_S = 2.0
BODY_BYTES = 120
TRANSIENT_4XX = frozenset({408, 425, 429})

__all__ = ["Answer", "HealthWatch", "get"]


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: status, reason phrase, the first bytes of the body, X-Served-By."""

    status: int
    reason: str
    body: bytes
    served_by: str | None = None

    def show(self) -> str:
        text = f"{self.status} {self.reason}".rstrip()
        snippet = self.body[:BODY_BYTES].decode("utf-8", "replace").strip()
        snippet = " ".join(snippet.split())  # one line
        return f'{text}: "{snippet}"' if snippet else f"{text} (empty body)"


def get(port: int, path: str, timeout: float = PROBE_TIMEOUT_S) -> Answer | None:
    """``GET path`` on 127.0.0.1:port; None when nothing answered HTTP."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read(BODY_BYTES)
        return Answer(response.status, response.reason or "", body,
                      response.getheader("X-Served-By"))
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


class HealthWatch:
    """The answers of one replica's health probes; ``ok`` tells whether it is ready.

    ``path`` None means any HTTP answer is ready (the harness has no health path to ask)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.last: Answer | None = None
        self.probes = 0
        self._streak = 0
        self._streak_since = 0.0

    def ok(self, answer: Answer | None, now: float) -> bool:
        """Record ``answer`` (seen at monotonic time ``now``); True when it means ready."""
        self.probes += 1
        previous, self.last = self.last, answer if answer is not None else self.last
        if answer is None:
            self._streak = 0
            return False
        if self.path is None or 200 <= answer.status < 300:
            return True
        if previous is not None and previous.status == answer.status and self._streak:
            self._streak += 1
        else:
            self._streak, self._streak_since = 1, now
        return False

    def steady_error(self, now: float) -> str | None:
        """What to fail with when the same client error kept coming back (see the module)."""
        last = self.last
        if last is None or not 400 <= last.status < 500 or last.status in TRANSIENT_4XX:
            return None
        if self._streak < STEADY_PROBES or now - self._streak_since < STEADY_S:
            return None
        return (f"answered GET {self.path} with {last.show()} on {self._streak} probes in a "
                f"row over {now - self._streak_since:.1f} s; a {last.status} does not go away "
                "by waiting: check the service's `health:` path (or set `health: null` to "
                "accept any HTTP answer)")

    def what(self, port: int, inside: bool = False) -> str:
        """Why it is not ready yet, for a timeout message."""
        on = f"on its port {port}" if inside else f"on port {port}"
        got = "nothing answered HTTP" if self.last is None else f"last answer {self.last.show()}"
        if self.path is None:
            return f"no HTTP answer {on}"
        return f"GET {self.path} {on} did not return 2xx; {got}"
