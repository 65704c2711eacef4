"""HTTP/1.x framing for the fault proxy: where requests and responses start and end.

The ``http_error`` toxic answers some requests itself, so the proxy must know request
boundaries on keep-alive connections (``Content-Length``, chunked bodies) and, to keep
responses in order, where each upstream response ends. :class:`Splitter` cuts one direction
of a connection into messages without changing a byte; :class:`Exchange` pairs both
directions of one connection. A connection that is not HTTP/1.x (a database protocol, a
tunnel after ``101 Switching Protocols``) turns *opaque*: its bytes pass through untouched.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from http import HTTPStatus

from harness.errors import InputError

MAX_HEAD_BYTES = 64 * 1024
MAX_LINE_BYTES = 8 * 1024
# Only these methods count as HTTP: bytes that could not start one of them are passed on at
# once, so another protocol (a database's, a raw echo) never waits for a head that won't come.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE",
                     "PATCH", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK",
                     "PURGE"})
_METHOD_PREFIXES = frozenset(m[:i].encode() for m in METHODS for i in range(len(m) + 1))
_REQUEST_LINE = re.compile(rb"([A-Z]+) [^ \r\n]+ HTTP/1\.[01]")
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: [^\r\n]*)?")
_STATUS_PREFIX = b"HTTP/1."


class FramingError(InputError):
    """A byte stream is not (or is no longer) HTTP/1.x."""


class Body(Enum):
    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until-close"
    TUNNEL = "tunnel"  # the connection stops being HTTP after this message


@dataclass(frozen=True)
class Head:
    """A parsed start line and header block (names lower-cased, repeats joined by ", ")."""

    start: tuple[str, str, str]
    headers: dict[str, str]

    @property
    def method(self) -> str:
        return self.start[0]

    @property
    def status(self) -> int:
        return int(self.start[1])

    def tokens(self, name: str) -> set[str]:
        return {t.strip().lower() for t in self.headers.get(name, "").split(",") if t.strip()}

    def wants_close(self) -> bool:
        """True when the request asks for the connection to close after the response."""
        if self.start[2] == "HTTP/1.0":
            return "keep-alive" not in self.tokens("connection")
        return "close" in self.tokens("connection")


def parse_head(raw: bytes, request: bool) -> Head:
    """Parse a head that ends with an empty line, or raise FramingError."""
    lines = raw.decode("latin-1").split("\r\n")
    if not _is_start_line(lines[0].encode("latin-1"), request):
        raise FramingError(f"not an HTTP/1.x start line: {lines[0][:80]!r}")
    first, second, third = (lines[0].split(" ", 2) + [""])[:3]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or line[0] in " \t":
            raise FramingError(f"bad header line {line[:80]!r}")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return Head((first, second, third), headers)


def request_body(head: Head) -> tuple[Body, int]:
    """How the body of a request is delimited (RFC 9112 section 6.3)."""
    if "transfer-encoding" in head.headers:
        if head.headers["transfer-encoding"].lower().split(",")[-1].strip() != "chunked":
            raise FramingError("request transfer-encoding without final chunked")
        return Body.CHUNKED, 0
    return _content_length(head)


def response_body(head: Head, method: str) -> tuple[Body, int]:
    """How the body of a response to ``method`` is delimited."""
    status = head.status
    if status == 101 or (method == "CONNECT" and 200 <= status < 300):
        return Body.TUNNEL, 0
    if status < 200 or status in (204, 304) or method == "HEAD":
        return Body.NONE, 0
    if "transfer-encoding" in head.headers:
        last = head.headers["transfer-encoding"].lower().split(",")[-1].strip()
        return (Body.CHUNKED, 0) if last == "chunked" else (Body.UNTIL_CLOSE, 0)
    if "content-length" in head.headers:
        return _content_length(head)
    return Body.UNTIL_CLOSE, 0


def _content_length(head: Head) -> tuple[Body, int]:
    values = {v.strip() for v in head.headers.get("content-length", "0").split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise FramingError(f"bad content-length {head.headers['content-length']!r}")
    length = int(values.pop())
    return (Body.LENGTH, length) if length else (Body.NONE, 0)


def _is_start_line(line: bytes, request: bool) -> bool:
    if not request:
        return _STATUS_LINE.fullmatch(line) is not None
    match = _REQUEST_LINE.fullmatch(line)
    return match is not None and match.group(1).decode() in METHODS


def _plausible_start(buffer: bytes, request: bool) -> bool:
    """Whether an unfinished head can still become an HTTP/1.x start line."""
    line = buffer.split(b"\n", 1)[0]
    if b"\n" in buffer:
        return _is_start_line(line.removesuffix(b"\r"), request)
    if len(line) > MAX_LINE_BYTES:
        return False
    line = line.removesuffix(b"\r")
    if not request:
        size = min(len(line), len(_STATUS_PREFIX))
        return line[:size] == _STATUS_PREFIX[:size]
    method, space, rest = line.partition(b" ")
    if not space:
        return method in _METHOD_PREFIXES
    return method.decode("latin-1") in METHODS and b"\r" not in rest


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip()
    if not digits or len(digits) > 16 or not all(c in b"0123456789abcdefABCDEF" for c in digits):
        raise FramingError(f"bad chunk size line {line[:40]!r}")
    return int(digits, 16)


@dataclass
class Segment:
    """Consecutive bytes of one message; ``head`` is None for opaque bytes."""

    data: bytes
    head: Head | None
    start: bool = False
    end: bool = False


class _State(Enum):
    HEAD = 1
    LENGTH = 2
    CHUNK_SIZE = 3
    CHUNK_DATA = 4
    TRAILER = 5
    UNTIL_CLOSE = 6


class Splitter:
    """Cuts one direction of an HTTP/1.x connection into messages; bytes are kept as sent.

    ``framing`` says how the body of a message with a given head is delimited. Only an
    unfinished head is held back; on anything that is not HTTP/1.x the splitter turns opaque
    and hands back what it held.
    """

    def __init__(self, request: bool, framing: Callable[[Head], tuple[Body, int]]) -> None:
        self.request = request
        self.opaque = False
        self._framing = framing
        self._state = _State.HEAD
        self._buffer = bytearray()  # an unfinished head, or an unfinished chunk-size line
        self._left = 0
        self._head: Head | None = None

    def feed(self, data: bytes) -> list[Segment]:
        out: list[Segment] = []
        pos = 0
        while pos < len(data) and not self.opaque:
            try:
                if self._state is _State.HEAD:
                    pos = self._head_step(data, pos, out)
                else:
                    pos = self._body_step(data, pos, out)
            except FramingError:
                if self._state is _State.HEAD:  # the held head bytes include data[pos:]
                    pos = len(data)
                self.make_opaque()
        if self.opaque and (self._buffer or pos < len(data)):
            out.append(Segment(bytes(self._buffer) + data[pos:], None))
            self._buffer.clear()
        return out

    def make_opaque(self) -> None:
        """Stop parsing; a held unfinished head is returned by the next ``feed``."""
        self.opaque = True
        if self._state is not _State.HEAD:
            self._buffer.clear()

    def _head_step(self, data: bytes, pos: int, out: list[Segment]) -> int:
        held = len(self._buffer)
        self._buffer += data[pos:]
        end = self._buffer.find(b"\r\n\r\n", max(0, held - 3))
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES or not _plausible_start(
                    bytes(self._buffer[:MAX_LINE_BYTES + 2]), self.request):
                raise FramingError("not an HTTP/1.x head")
            return len(data)
        raw = bytes(self._buffer[: end + 4])
        head = parse_head(raw, self.request)
        body, length = self._framing(head)
        self._buffer.clear()
        self._head = head
        if body is Body.TUNNEL:
            self.opaque = True
        elif body is Body.LENGTH:
            self._state, self._left = _State.LENGTH, length
        elif body is Body.CHUNKED:
            self._state = _State.CHUNK_SIZE
        elif body is Body.UNTIL_CLOSE:
            self._state = _State.UNTIL_CLOSE
        out.append(Segment(raw, head, start=True, end=self._state is _State.HEAD))
        return pos + (end + 4 - held)

    def _body_step(self, data: bytes, pos: int, out: list[Segment]) -> int:
        state = self._state
        if state is _State.UNTIL_CLOSE:
            stop, ended = len(data), False
        elif state in (_State.LENGTH, _State.CHUNK_DATA):
            stop = pos + min(self._left, len(data) - pos)
            self._left -= stop - pos
            ended = state is _State.LENGTH and self._left == 0
            if self._left == 0:
                self._state = _State.HEAD if ended else _State.CHUNK_SIZE
        else:
            stop, ended = self._line_step(data, pos)
        out.append(Segment(data[pos:stop], self._head, end=ended))
        return stop

    def _line_step(self, data: bytes, pos: int) -> tuple[int, bool]:
        """A chunk-size or trailer line; returns where it stops and if the message ended."""
        newline = data.find(b"\n", pos)
        stop = len(data) if newline < 0 else newline + 1
        self._buffer += data[pos:stop]
        if len(self._buffer) > MAX_LINE_BYTES:
            raise FramingError("chunk line too long")
        if newline < 0:
            return stop, False
        line = bytes(self._buffer).strip()
        self._buffer.clear()
        if self._state is _State.CHUNK_SIZE:
            size = _chunk_size(line)
            self._state = _State.TRAILER if size == 0 else _State.CHUNK_DATA
            self._left = size + 2  # the data and its CRLF
            return stop, False
        if line:  # a trailer field
            return stop, False
        self._state = _State.HEAD
        return stop, True


@dataclass
class Piece:
    """Bytes for the client; ``close`` asks to close the connection once they are sent."""

    data: bytes
    close: bool = False


Decide = Callable[[Head], bytes | None]


class Exchange:
    """Both directions of one client connection: which requests go upstream, which the proxy
    answers (``decide`` returns a full response, or None to forward), and the order in which
    the client gets responses — always the order of its requests."""

    def __init__(self, decide: Decide) -> None:
        self._decide = decide
        self._requests = Splitter(True, request_body)
        self._responses = Splitter(False, self._response_body)
        self._seq = -1  # the request being read from the client
        self._answer: Piece | None = None  # the local answer to that request, once complete
        self._dropping = False  # its bytes stay here
        self._ready: dict[int, Piece] = {}  # local answers waiting for their turn
        self._forwarded: deque[tuple[int, str]] = deque()  # (seq, method) sent upstream
        self._next_out = 0  # the request whose response the client gets next

    @property
    def opaque(self) -> bool:
        return self._requests.opaque or self._responses.opaque

    def from_client(self, data: bytes) -> tuple[bytes, list[Piece]]:
        """Bytes to forward upstream, and local answers the client can get now."""
        if self.opaque:
            return data, []
        forward = bytearray()
        for segment in self._requests.feed(data):
            if segment.head is None:
                forward += segment.data
                continue
            if segment.start:
                self._start_request(segment.head)
            if not self._dropping:
                forward += segment.data
            if segment.end and self._answer is not None:
                self._ready[self._seq] = self._answer
                self._answer = None
        self._sync_opaque()
        return bytes(forward), self._flush()

    def from_upstream(self, data: bytes) -> list[Piece]:
        """Upstream bytes for the client, with local answers slotted in at their turn."""
        if self.opaque:
            return [Piece(data)]
        out: list[Piece] = []
        passing = bytearray()  # upstream bytes go out in as few writes as they came
        for segment in self._responses.feed(data):
            passing += segment.data
            if segment.end and segment.head is not None and segment.head.status >= 200:
                if self._forwarded:
                    self._next_out = self._forwarded.popleft()[0] + 1
                answers = self._flush()
                if answers:
                    out += [Piece(bytes(passing)), *answers]
                    passing.clear()
        if passing:
            out.append(Piece(bytes(passing)))
        self._sync_opaque()
        return out

    def _start_request(self, head: Head) -> None:
        self._seq += 1
        response = self._decide(head)
        self._dropping = response is not None
        if response is None:
            self._forwarded.append((self._seq, head.method))
        elif head.headers.get("expect", "").lower() == "100-continue":
            self._ready[self._seq] = Piece(response, close=True)  # the body may never come
        else:
            self._answer = Piece(response, close=head.wants_close())

    def _response_body(self, head: Head) -> tuple[Body, int]:
        method = self._forwarded[0][1] if self._forwarded else "GET"
        return response_body(head, method)

    def _flush(self) -> list[Piece]:
        out: list[Piece] = []
        while not self.opaque and self._next_out in self._ready:
            out.append(self._ready.pop(self._next_out))
            self._next_out += 1
        return out

    def _sync_opaque(self) -> None:
        if self.opaque:
            self._requests.make_opaque()
            self._responses.make_opaque()
            self._ready.clear()


def simple_response(status: int, body: str, head_only: bool, close: bool) -> bytes:
    """A complete HTTP/1.1 response with a text body (left out for HEAD requests)."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    payload = (body or f"{status} {reason} (injected by the fault proxy)\n").encode()
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: text/plain; charset=utf-8",
             f"Content-Length: {len(payload)}", "X-Fault-Injected: http_error"]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + payload
