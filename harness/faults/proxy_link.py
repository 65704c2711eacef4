"""One proxied connection (a *link*): client ⇄ upstream with the proxy's toxics applied.

Each direction has a reader task and a writer task joined by a small queue. Readers stamp
chunks with their arrival time (so latency is counted from arrival and chunks in flight are
delayed in parallel, not one after the other) and, for HTTP/1.x connections, let the
:class:`~harness.faults.proxy_http.Exchange` slot ``http_error`` answers into the downstream
queue. Writers look up the toxics *at the moment a chunk is sent*, so toxics added or removed
while a connection is open apply to it at once, as in Toxiproxy.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

from harness.faults.proxy_http import Exchange, Head, simple_response
from harness.faults.toxics import (
    ChunkPlan,
    HttpErrorAttributes,
    SlowCloseAttributes,
    Stream,
    TimeoutAttributes,
    Toxic,
    applies,
    bandwidth_pieces,
    plan_chunk,
    should_fail,
    slice_sizes,
    transfer_time_s,
)

log = logging.getLogger(__name__)
READ_SIZE = 64 * 1024
QUEUE_CHUNKS = 16
EOF: Literal["eof"] = "eof"  # queue marker: the source closed its side
CLOSE: Literal["close"] = "close"  # queue marker: close the whole link once sent so far
Item = tuple[bytes, float] | Literal["eof", "close"]


@dataclass
class ProxyStats:
    """Counters of one proxy, shown in ``GET /proxies/{name}`` under ``stats``."""

    connections: int = 0
    active_connections: int = 0
    bytes_upstream: int = 0  # written to the upstream
    bytes_downstream: int = 0  # written to clients (http_error answers included)
    http_errors: int = 0  # requests answered by an http_error toxic
    upstream_errors: int = 0  # client connections dropped because the upstream refused

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class LinkOwner(Protocol):
    """What a link needs from its proxy."""

    rng: random.Random
    stats: ProxyStats

    def toxics_for(self, stream: Stream) -> list[Toxic]: ...

    def has_toxic(self, uid: int) -> bool: ...


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Link:
    """A client connection and its upstream connection; ``run()`` returns once both are
    closed. ``close()`` (graceful) and ``close(reset=True)`` (TCP RST) may be called any time.
    """

    def __init__(self, owner: LinkOwner, client: Conn, upstream: Conn) -> None:
        self._owner = owner
        self._rng = owner.rng
        self._client, self._upstream = client, upstream
        self._writers: dict[Stream, asyncio.StreamWriter] = {
            "upstream": upstream[1], "downstream": client[1]}
        self._queues: dict[Stream, asyncio.Queue[Item]] = {
            "upstream": asyncio.Queue(QUEUE_CHUNKS), "downstream": asyncio.Queue(QUEUE_CHUNKS)}
        self._idle: dict[Stream, bool] = {"upstream": False, "downstream": False}
        self._exchange = Exchange(self._answer)
        self._applies: dict[int, bool] = {}  # toxic uid -> toxicity draw for this connection
        self._sent: dict[int, int] = {}  # limit_data uid -> bytes passed
        self._next_free: dict[int, float] = {}  # bandwidth uid -> when the pipe is free again
        self._timers: dict[int, asyncio.TimerHandle] = {}  # timeout uid -> its close timer
        self._half_closed = 0
        self._done = asyncio.Event()
        self._finished = asyncio.Event()
        self._reset = False

    async def run(self) -> None:
        tasks = [asyncio.create_task(coro) for coro in (
            self._read_client(), self._read_upstream(),
            self._write("upstream"), self._write("downstream"))]
        for task in tasks:
            task.add_done_callback(self._task_done)
        self.refresh_toxics()
        try:
            await self._done.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for timer in self._timers.values():
                timer.cancel()
            self._close_transports()
            self._finished.set()

    def close(self, reset: bool = False) -> None:
        self._reset = self._reset or reset
        self._done.set()

    async def wait_closed(self) -> None:
        await self._finished.wait()

    def refresh_toxics(self) -> None:
        """Start the close timers of ``timeout`` toxics that now apply to this connection."""
        loop = asyncio.get_running_loop()
        for stream in ("upstream", "downstream"):
            for toxic in self._active(stream):
                attrs = toxic.attributes
                if isinstance(attrs, TimeoutAttributes) and attrs.timeout and (
                        toxic.uid not in self._timers):
                    self._timers[toxic.uid] = loop.call_later(
                        attrs.timeout / 1000.0, self._timeout_fired, toxic.uid)

    def _timeout_fired(self, uid: int) -> None:
        if self._owner.has_toxic(uid):
            self.close()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            if not isinstance(exc, OSError):
                log.error("link failed", exc_info=exc)
            self.close()

    def _active(self, stream: Stream) -> list[Toxic]:
        """The toxics of ``stream`` that apply to this connection, in chain order."""
        active = []
        for toxic in self._owner.toxics_for(stream):
            if toxic.uid not in self._applies:
                self._applies[toxic.uid] = applies(toxic.toxicity, self._rng)
            if self._applies[toxic.uid]:
                active.append(toxic)
        return active

    def _answer(self, head: Head) -> bytes | None:
        """The http_error response for this request, or None to forward it."""
        for toxic in self._active("downstream"):
            attrs = toxic.attributes
            if isinstance(attrs, HttpErrorAttributes) and should_fail(toxic, attrs, self._rng):
                self._owner.stats.http_errors += 1
                return simple_response(attrs.status, attrs.body, head_only=head.method == "HEAD",
                                       close=head.wants_close())
        return None

    async def _read_client(self) -> None:
        loop = asyncio.get_running_loop()
        while data := await self._client[0].read(READ_SIZE):
            now = loop.time()
            forward, answers = self._exchange.from_client(data)
            if forward:
                await self._forward("upstream", forward, now)
            for piece in answers:
                await self._forward("downstream", piece.data, now, piece.close)
        await self._queues["upstream"].put(EOF)

    async def _read_upstream(self) -> None:
        loop = asyncio.get_running_loop()
        while data := await self._upstream[0].read(READ_SIZE):
            now = loop.time()
            for piece in self._exchange.from_upstream(data):
                await self._forward("downstream", piece.data, now, piece.close)
        await self._queues["downstream"].put(EOF)

    async def _forward(self, stream: Stream, data: bytes, arrived: float,
                       close: bool = False) -> None:
        """Hand bytes to the stream's writer, or write them at once when nothing is queued and
        no toxic could touch them (the common case costs no task switch)."""
        queue = self._queues[stream]
        if self._idle[stream] and queue.empty() and not self._owner.toxics_for(stream):
            await self._send(stream, self._writers[stream], data, None)
        else:
            await queue.put((data, arrived))
        if close:
            await queue.put(CLOSE)

    async def _write(self, stream: Stream) -> None:
        queue, writer = self._queues[stream], self._writers[stream]
        while True:
            self._idle[stream] = True
            item = await queue.get()
            self._idle[stream] = False
            if item == CLOSE:
                self.close()
                return
            if item == EOF:
                await self._half_close(stream, writer)
                return
            data, arrived = item
            plan = plan_chunk(self._active(stream), data, self._sent, self._rng)
            if not await self._carry_out(stream, writer, plan, arrived):
                return

    async def _carry_out(self, stream: Stream, writer: asyncio.StreamWriter, plan: ChunkPlan,
                         arrived: float) -> bool:
        """Send one planned chunk; False when the link is closing because of a toxic."""
        if plan.drop:
            return True
        if plan.reset_after_s is not None:
            await asyncio.sleep(plan.reset_after_s)
            self.close(reset=True)
            return False
        await _sleep_until(arrived + plan.delay_s)
        sizes = slice_sizes(len(plan.data), plan.slicer, self._rng) if plan.slicer else [
            len(plan.data)]
        start = 0
        for size in sizes:
            await self._send(stream, writer, plan.data[start:start + size], plan.bandwidth)
            start += size
            if plan.slicer and plan.slicer.delay:
                await asyncio.sleep(plan.slicer.delay / 1_000_000)
        if plan.close_after:
            self.close()
            return False
        return True

    async def _send(self, stream: Stream, writer: asyncio.StreamWriter, data: bytes,
                    bandwidth: tuple[int, int] | None) -> None:
        if not data:
            return
        pieces = bandwidth_pieces(len(data), bandwidth[1]) if bandwidth else [len(data)]
        loop = asyncio.get_running_loop()
        start = 0
        for size in pieces:
            if bandwidth:
                uid, rate = bandwidth
                now = loop.time()
                due = max(now, self._next_free.get(uid, now)) + transfer_time_s(size, rate)
                self._next_free[uid] = due
                await _sleep_until(due)
            writer.write(data[start:start + size])
            await writer.drain()
            start += size
            if stream == "upstream":
                self._owner.stats.bytes_upstream += size
            else:
                self._owner.stats.bytes_downstream += size

    async def _half_close(self, stream: Stream, writer: asyncio.StreamWriter) -> None:
        for toxic in self._active(stream):
            if isinstance(toxic.attributes, SlowCloseAttributes):
                await asyncio.sleep(toxic.attributes.delay / 1000.0)
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
        self._half_closed += 1
        if self._half_closed == 2:
            self.close()

    def _close_transports(self) -> None:
        for _, writer in (self._client, self._upstream):
            if self._reset:
                _abort_with_rst(writer)
            else:
                writer.close()


async def _sleep_until(due: float) -> None:
    pause = due - asyncio.get_running_loop().time()
    if pause > 0:
        await asyncio.sleep(pause)


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0 so the peer gets a TCP RST ("connection reset by peer")."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()
