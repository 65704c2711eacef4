"""A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``.

Headless Chromium reads commands from fd 3 and writes replies and events to fd 4 (JSON
messages ending in a NUL byte), so no port is opened and no client library is needed. One
:class:`Browser` per test module; :meth:`Browser.page` opens a fresh tab with the network
switched off that records console errors, exceptions and every request it makes.
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-pipe"]  # fmt: skip
TIMEOUT_S = 20.0


class CdpError(RuntimeError):
    """A protocol error reply, a timeout or a browser that went away."""


class Browser:
    """A headless Chromium driven through the debugging pipe; use as a context manager."""

    def __init__(self, binary: str, profile_dir: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire() -> None:  # in the child: the pipe ends become fds 3 and 4 (inheritable);
            # copy both first, so that placing one cannot overwrite the other
            read_end, write_end = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.proc = subprocess.Popen(  # noqa: S603 (fixed argv, local binary)
            [binary, *FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
            preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the browser (politely, then for good) and close the pipes."""
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close", timeout=5)
                except CdpError:
                    pass
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        finally:
            for fd in (self._to_chrome, self._from_chrome):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError("timed out waiting for the browser")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 16)
                if not chunk:
                    raise CdpError("the browser closed the pipe")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = TIMEOUT_S) -> dict[str, Any]:  # fmt: skip
        """Send one command and return its result; events read meanwhile go to ``events``."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, match: Callable[[dict[str, Any]], bool],
                 timeout: float = TIMEOUT_S) -> dict[str, Any]:  # fmt: skip
        """The first event (already received or still to come) that ``match`` accepts."""
        for event in self.events:
            if match(event):
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if match(event):
                return event

    def page(self, width: int = 1280, height: int = 900) -> Page:
        """A new tab: offline, console and network recorded."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session, target)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                  "downloadThroughput": -1, "uploadThroughput": -1})  # fmt: skip
        page.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                  "deviceScaleFactor": 1, "mobile": False})  # fmt: skip
        return page


@dataclass
class Page:
    """One tab of a :class:`Browser` (a flattened CDP session)."""

    browser: Browser
    session: str
    target: str
    _mark: int = field(default=0)

    def close(self) -> None:
        """Close the tab."""
        self.browser.send("Target.closeTarget", {"targetId": self.target})

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, self.session)

    def open(self, path: Path) -> None:
        """Navigate to a local file and wait for its load event."""
        self._mark = len(self.browser.events)
        self.send("Page.navigate", {"url": path.resolve().as_uri()})
        self.browser.wait_for(lambda e: e.get("sessionId") == self.session
                              and e.get("method") == "Page.loadEventFired")  # fmt: skip

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` evaluated in the page."""
        result = self.send("Runtime.evaluate", {"expression": expression,
                           "returnByValue": True, "awaitPromise": True})  # fmt: skip
        if "exceptionDetails" in result:
            raise CdpError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def _events(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.browser.events[self._mark:]
                if e.get("sessionId") == self.session and e.get("method") == method]  # fmt: skip

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries since :meth:`open`."""
        found = [str(e["exceptionDetails"]) for e in self._events("Runtime.exceptionThrown")]
        found += [str(e["args"]) for e in self._events("Runtime.consoleAPICalled")
                  if e.get("type") in ("error", "assert")]  # fmt: skip
        found += [f"{e['entry'].get('source')}: {e['entry'].get('text')}"
                  for e in self._events("Log.entryAdded") if e["entry"].get("level") == "error"]
        return found

    def requests(self) -> list[str]:
        """URLs the page asked for since :meth:`open`."""
        return [e["request"]["url"] for e in self._events("Network.requestWillBeSent")]

    def mouse(self, kind: str, x: float, y: float) -> None:
        """A mouse event at viewport coordinates (``mouseMoved``, ``mousePressed``, ...)."""
        params: dict[str, Any] = {"type": kind, "x": x, "y": y}
        if kind in ("mousePressed", "mouseReleased"):
            params |= {"button": "left", "clickCount": 1}
        self.send("Input.dispatchMouseEvent", params)

    def screenshot(self, clip: dict[str, float]) -> bytes:
        """PNG bytes of a page region (document coordinates), beyond the viewport if need be."""
        result = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport":
                           True, "clip": {**clip, "scale": 1}})  # fmt: skip
        return base64.b64decode(result["data"])
