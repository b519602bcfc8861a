"""The streaming side of a request, for `stream` handler kinds (reverse proxy).

A stream handler reads the request body as it arrives (`receive()`, with
reading paused while more than `HIGH_WATER` bytes wait unread) and writes
the response as it is produced (`start()`, `send()`), so memory is bounded by
buffers, not by body sizes. After a `101 Switching Protocols` the handler
takes the raw connection with `tunnel()`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from flexilib.http.status import status_line
from flexilib.request import Request

if TYPE_CHECKING:
    from flexilib.http.protocol import HttpProtocol

__all__ = ["Exchange", "Tunnel"]

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class _Inbox:
    """Bytes arriving from the client, read by one coroutine, with flow control."""

    def __init__(self, protocol: HttpProtocol) -> None:
        self._protocol = protocol
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._lost = False
        self._waiter: asyncio.Future | None = None

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered > HIGH_WATER:
            self._protocol.pause_reading()
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def lost(self) -> None:
        self._lost = self._eof = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        """The next piece; b"" at the end. ConnectionResetError if the client went away."""
        while not self._chunks and not self._eof:
            self._waiter = self._protocol.server.loop.create_future()
            await self._waiter
            self._waiter = None
        if self._chunks:
            chunk = self._chunks.popleft()
            self._buffered -= len(chunk)
            if self._buffered < LOW_WATER:
                self._protocol.resume_reading()
            return chunk
        if self._lost:
            raise ConnectionResetError("client closed the connection")
        return b""

    @property
    def complete(self) -> bool:
        return self._eof and not self._lost


class Tunnel(_Inbox):
    """The raw connection after an upgrade: bytes both ways until either side closes."""

    def write(self, data: bytes) -> None:
        if not self._protocol.closing:
            self._protocol.transport.write(data)

    async def drain(self) -> None:
        await self._protocol.drained()

    def close(self) -> None:
        """Close after what was written has been sent (the other end closed)."""
        self._protocol._close()


class Exchange:
    """One streamed request/response pair on a connection."""

    def __init__(self, protocol: HttpProtocol, request: Request) -> None:
        self.request = request
        self._protocol = protocol
        self._body = _Inbox(protocol)
        self.started = False
        self.status = 0
        self.sent = 0
        self.keep_alive = True
        self._chunked = False
        self._suppress = request.raw_method == b"HEAD"
        self._upgrade: bytes | None = None
        self._tunnel: Tunnel | None = None

    # -- fed by the protocol ---------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        self._body.feed(chunk)

    def feed_eof(self) -> None:
        self._body.feed_eof()

    def lost(self) -> None:
        self._body.lost()
        if self._tunnel is not None:
            self._tunnel.lost()

    def upgrade_ready(self, rest: bytes) -> bool:
        """The request asked to upgrade; `rest` are bytes already received past it.

        Reading pauses until `tunnel()`: what the client sends next is not HTTP.
        """
        self._upgrade = rest
        self._protocol.pause_reading()
        return True

    # -- for the handler -------------------------------------------------------
    @property
    def wants_upgrade(self) -> bool:
        return self._upgrade is not None

    @property
    def body_complete(self) -> bool:
        return self._body.complete

    @property
    def client_closed(self) -> bool:
        """True once the client's connection is closed or closing: stop producing for it."""
        return self._protocol.closing

    @property
    def route_prefix(self) -> bytes:
        """The path prefix of the rule that routed this request (what a proxy replaces)."""
        job = self._protocol.current
        if job is not None and job.exchange is self and job.rule is not None:
            return job.rule.path_prefix
        return b""

    async def receive(self) -> bytes:
        """The next piece of the request body; b"" once it has all been read."""
        return await self._body.read()

    def start(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        reason: str | None = None,
        length: int | None = None,
        body: bytes = b"",
    ) -> None:
        """Write the status line and headers; the body is framed by `length`, else chunked.

        `body`, the first piece of the body (or all of it), goes out with the head: one
        write, one system call, instead of two.
        """
        self.started = True
        self.status = status
        protocol = self._protocol
        job = protocol.current
        keep = self.keep_alive and job is not None and job.keep_alive
        keep = keep and not protocol.server.stopping
        lines = [status_line(status, reason), protocol.server.common_headers]
        lines += [b"%s: %s\r\n" % pair for pair in headers]
        if status == 101:
            keep = True
        elif self._suppress or status in (204, 304) or 100 <= status < 200:
            if length is not None:
                lines.append(b"Content-Length: %d\r\n" % length)
            self._suppress = True
        elif length is not None:
            lines.append(b"Content-Length: %d\r\n" % length)
        elif self.request.http_version == "1.1":
            self._chunked = True
            lines.append(b"Transfer-Encoding: chunked\r\n")
        else:
            keep = False  # HTTP/1.0: the body ends when the connection does
        if status != 101:
            lines.append(b"Connection: keep-alive\r\n" if keep else b"Connection: close\r\n")
        self.keep_alive = keep
        lines.append(b"\r\n")
        if body and not self._suppress:
            self.sent += len(body)
            lines += (b"%x\r\n" % len(body), body, b"\r\n") if self._chunked else (body,)
        protocol.write(b"".join(lines))

    def write(self, data: bytes) -> None:
        if not data or self._suppress:
            return
        self.sent += len(data)
        if self._chunked:
            self._protocol.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self._protocol.write(data)

    async def send(self, data: bytes) -> None:
        """Write a piece of the body and wait while the client is slower than us."""
        self.write(data)
        await self._protocol.drained()

    def abort(self) -> None:
        """End without completing the response: the client sees the connection close."""
        self.keep_alive = False
        self._chunked = False
        self._protocol.close_now()

    def tunnel(self) -> Tunnel:
        """After writing a 101: the raw connection, with bytes that arrived early."""
        tunnel = Tunnel(self._protocol)
        if self._upgrade:
            tunnel.feed(self._upgrade)
        self._tunnel = tunnel
        self._protocol.tunnel = tunnel
        self._protocol.resume_reading()
        return tunnel

    def finish(self) -> None:
        """The handler is done: terminate the body and free the connection for the next request."""
        if self._chunked and not self._protocol.closing:
            self._protocol.write(b"0\r\n\r\n")
        self._chunked = False
        if not self._body.complete or self._upgrade is not None:
            self.keep_alive = False
        self._protocol.exchange_done(self)
