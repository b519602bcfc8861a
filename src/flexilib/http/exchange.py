"""One request and its response on a connection: the object an application answers.

The protocol creates an `Exchange` when a request's header section is in and
hands it to the application (`http.protocol.Application`), which answers it
in one of two ways:

- whole: `respond(response)` once the request (and its body) is complete;
- streamed (reverse proxy, tunnels): `receive()` the body while it arrives
  (reading pauses while more than `flow.HIGH_WATER` bytes wait unread), and
  `start()` / `send()` / `finish()` the response as it is produced, so
  memory is bounded by buffers, not by body sizes. After a `101 Switching
  Protocols`, `tunnel()` gives the raw connection.

It writes through its connection's public methods only (`Connection`
below), and tells the connection when it is done; it never reads the
protocol's state. It also carries what the access log reports (status,
bytes, times, memory figures) and two fields owned by the application:
`route` and `handler`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Protocol

from flexilib.http.connections import Connections
from flexilib.http.flow import ReadBuffer, WriteFlow
from flexilib.http.headers import DEFAULT_CONTENT_TYPE, check_head, encode_headers
from flexilib.http.status import status_line
from flexilib.request import Request

if TYPE_CHECKING:
    from flexilib.response import Response

__all__ = ["Connection", "Exchange", "Tunnel"]

_CLOSE = b"Connection: close\r\n"
_KEEP = b"Connection: keep-alive\r\n"
_LARGE = 64 * 1024  # bodies above this are written apart from the head, not copied into it


class Connection(Protocol):
    """What an exchange may do to its connection (implemented by `HttpProtocol`)."""

    closing: bool
    flow: WriteFlow
    transport: asyncio.Transport  # written to directly by `respond()`, the hot path
    connections: Connections  # `default_headers`, `stopping`

    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def exchange_done(self, exchange: Exchange) -> None: ...
    def start_tunnel(self, tunnel: Tunnel) -> None: ...


class _Inbox:
    """Bytes from the client, read by one coroutine at a time."""

    __slots__ = ("_buffer", "_loop", "_waiter", "eof", "lost")

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self._buffer = ReadBuffer(conn.pause_reading, conn.resume_reading)
        self._loop = loop
        self._waiter: asyncio.Future | None = None
        self.eof = False
        self.lost = False

    def feed(self, chunk: bytes) -> None:
        self._buffer.put(chunk)
        self._wake()

    def feed_eof(self) -> None:
        self.eof = True
        self._wake()

    def lose(self) -> None:
        self.lost = self.eof = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> bytes:
        """The next piece; b"" at the end. ConnectionResetError if the client went away."""
        while not self._buffer and not self.eof:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._buffer:
            return self._buffer.take()
        if self.lost:
            raise ConnectionResetError("client closed the connection")
        return b""


class Tunnel(_Inbox):
    """The raw connection after an upgrade: bytes both ways until either side closes."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(conn, loop)
        self._conn = conn

    def write(self, data: bytes) -> None:
        self._conn.write(data)

    async def drain(self) -> None:
        await self._conn.flow.drain()

    def close(self) -> None:
        """Close after what was written has been sent (the other end closed)."""
        self._conn.close()


class _Streaming:
    """The state only a streamed exchange needs (kept apart: most requests never stream)."""

    __slots__ = ("chunked", "suppress", "upgrade", "tunnel")

    def __init__(self, head: bool) -> None:
        self.chunked = False  # the response body goes out chunked
        self.suppress = head  # no response body (HEAD, 204, 304, 1xx)
        self.upgrade: bytes | None = None  # asked to upgrade: bytes that came after the request
        self.tunnel: Tunnel | None = None


class Exchange:
    """See the module docstring. Times are `perf_counter()` seconds."""

    __slots__ = (
        "request",
        "client",
        "keep_alive",
        "route",
        "handler",
        "started_at",
        "ttfb",
        "status",
        "sent",
        "prealloc",
        "alloc",
        "started",
        "on_lost",
        "_conn",
        "_loop",
        "_body",
        "_stream",
    )

    def __init__(
        self,
        conn: Connection,
        request: Request,
        client: str,
        keep_alive: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.request = request
        self.client = client  # `host:port`, as the access log writes it
        self.keep_alive = keep_alive
        self.route = None  # the application's: where it sent this request
        self.handler = None  # the application's: the handler version answering it
        self.started_at = 0.0  # when its turn on the connection came
        # What the access log reports: `ttfb`, `status`, `sent` (body bytes), `prealloc`,
        # `alloc`, and `started` (a response head was written) are set by `respond()` for
        # a whole response, and by `open_body()` for a streamed one: one request in three
        # thousand streams, and six stores a request are 1% of the hot path (callgrind).
        #: called once if the connection is lost before the answer (an answer held back)
        self.on_lost: Callable[[Exchange], None] | None = None
        self._conn = conn
        self._loop = loop
        self._body: _Inbox | None = None  # a streamed request body
        self._stream: _Streaming | None = None  # a streamed response

    # -- answering whole -----------------------------------------------------
    def respond(self, response: Response) -> None:
        """Write the whole response; InvalidResponse (nothing written) if it breaks a rule."""
        raw = response.raw_headers
        typed = response.typed
        if response.headers:
            extra, extra_typed = encode_headers(response.headers)
            raw += extra
            typed = typed or extra_typed
        status = response.status
        reason = response.reason
        if reason is not None or type(status) is not int or not 100 <= status <= 999:
            check_head(status, reason)
        self.ttfb = perf_counter()
        body = response.body
        self.status = status
        self.sent = len(body)
        self.prealloc = response.prealloc
        self.alloc = response.alloc or len(body) + len(raw)
        self.started = True
        conn = self._conn
        if conn.closing:
            conn.exchange_done(self)
            return
        shared = conn.connections
        keep = self.keep_alive and not shared.stopping
        head = b"".join(
            (
                status_line(status, reason),
                shared.default_headers,
                raw,
                b"" if typed else DEFAULT_CONTENT_TYPE,
                b"Content-Length: %d\r\n" % len(body),
                (_KEEP if self.request.http_version == "1.0" else b"") if keep else _CLOSE,
                b"\r\n",
            )
        )
        write = conn.transport.write
        if not body or self.request.raw_method == b"HEAD":
            write(head)
        elif len(body) > _LARGE:
            write(head)
            write(body)
        else:
            write(head + body)
        self.keep_alive = keep
        conn.exchange_done(self)

    # -- streaming: fed by the protocol --------------------------------------------
    def open_body(self) -> None:
        """This exchange reads its body as it arrives (the protocol feeds it)."""
        self._body = _Inbox(self._conn, self._loop)
        self._stream = _Streaming(self.request.raw_method == b"HEAD")
        self.ttfb = 0.0
        self.status = 0
        self.sent = 0
        self.prealloc = 0
        self.alloc = 0
        self.started = False

    def feed(self, chunk: bytes) -> None:
        self._body.feed(chunk)

    def feed_eof(self) -> None:
        self._body.feed_eof()

    def lost(self) -> None:
        """The connection is gone (or its body broke off): wake whoever reads."""
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost(self)
        if self._body is not None:
            self._body.lose()
        if self._stream is not None and self._stream.tunnel is not None:
            self._stream.tunnel.lose()

    def upgrade_ready(self, rest: bytes) -> None:
        """The request asked to upgrade; `rest` are bytes already received past it.

        Reading pauses until `tunnel()`: what the client sends next is not HTTP.
        """
        self._stream.upgrade = rest
        self._conn.pause_reading()

    # -- streaming: for the handler ----------------------------------------------
    @property
    def streamed(self) -> bool:
        return self._body is not None

    @property
    def wants_upgrade(self) -> bool:
        return self._stream is not None and self._stream.upgrade is not None

    @property
    def body_complete(self) -> bool:
        body = self._body
        return body is not None and body.eof and not body.lost

    @property
    def client_closed(self) -> bool:
        """True once the client's connection is closed or closing: stop producing for it."""
        return self._conn.closing

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
        write, one system call, instead of two. `headers` are already-checked bytes.
        """
        self.started = True
        self.status = status
        self.ttfb = perf_counter()
        if self._stream is None:
            self._stream = _Streaming(self.request.raw_method == b"HEAD")
        stream = self._stream
        conn = self._conn
        keep = self.keep_alive and not conn.connections.stopping
        lines = [status_line(status, reason), conn.connections.default_headers]
        lines += [b"%s: %s\r\n" % pair for pair in headers]
        if status == 101:
            keep = True
        elif stream.suppress or status in (204, 304) or 100 <= status < 200:
            if length is not None:
                lines.append(b"Content-Length: %d\r\n" % length)
            stream.suppress = True
        elif length is not None:
            lines.append(b"Content-Length: %d\r\n" % length)
        elif self.request.http_version == "1.1":
            stream.chunked = True
            lines.append(b"Transfer-Encoding: chunked\r\n")
        else:
            keep = False  # HTTP/1.0: the body ends when the connection does
        if status != 101:
            lines.append(_KEEP if keep else _CLOSE)
        self.keep_alive = keep
        lines.append(b"\r\n")
        if body and not stream.suppress:
            self.sent += len(body)
            lines += (b"%x\r\n" % len(body), body, b"\r\n") if stream.chunked else (body,)
        conn.write(b"".join(lines))

    def write(self, data: bytes) -> None:
        stream = self._stream
        if not data or stream.suppress:
            return
        self.sent += len(data)
        if stream.chunked:
            self._conn.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self._conn.write(data)

    async def send(self, data: bytes) -> None:
        """Write a piece of the body and wait while the client is slower than us."""
        self.write(data)
        await self._conn.flow.drain()

    def abort(self) -> None:
        """End without completing the response: the client sees the connection close."""
        self.keep_alive = False
        if self._stream is not None:
            self._stream.chunked = False
        self._conn.abort()

    def tunnel(self) -> Tunnel:
        """After writing a 101: the raw connection, with bytes that arrived early."""
        tunnel = Tunnel(self._conn, self._loop)
        if self._stream.upgrade:
            tunnel.feed(self._stream.upgrade)
        self._stream.tunnel = tunnel
        self._conn.start_tunnel(tunnel)
        return tunnel

    def finish(self) -> None:
        """The handler is done: terminate the body and free the connection for the next request."""
        stream = self._stream
        if stream.chunked and not self._conn.closing:
            self._conn.write(b"0\r\n\r\n")
        stream.chunked = False
        if not self.body_complete or stream.upgrade is not None:
            self.keep_alive = False
        self.alloc = self.sent
        self._conn.exchange_done(self)
