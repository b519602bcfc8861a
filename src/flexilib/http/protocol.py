"""The HTTP/1.1 connection protocol: parsing, limits, keep-alive, pipelining, timeouts, writing.

httptools (llhttp) parses; this class turns its callbacks into `Exchange`s
and hands each to the `Application` (the server layer routes and runs it;
the Lambda Runtime API is another application). It knows nothing of
handlers. Requests on one connection are answered in order: pipelined
requests wait in `queue` behind the one being answered (`current`).

A request's body is either buffered (the application's `head()` says so;
`max_body_bytes` applies, and the exchange starts once the whole request is
in) or streamed (the exchange starts as soon as the header section is in and
reads the body through `Exchange.receive()` while it arrives).

What the connection waits for (`phase`) decides which timeout runs; the
listener's `Connections.tick()` calls `timed_out()` once a deadline passes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from time import perf_counter
from typing import Protocol

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser

from flexilib.http.connections import Connections
from flexilib.http.exchange import Exchange, Tunnel
from flexilib.http.flow import WriteFlow
from flexilib.log import diag, format_client
from flexilib.request import Request
from flexilib.response import Response

__all__ = ["Application", "HttpProtocol"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# What the connection is waiting for (`HttpProtocol.phase`), and so which timeout runs.
AWAITING_REQUEST = 0  # idle between requests: keepalive_timeout
READING_HEAD = 1  # a header section is (or may be) arriving: header_timeout
READING_BODY = 2  # a body is arriving: body_timeout between pieces
ANSWERING = 3  # the request is in; the answer is owed: no client timeout


class Application(Protocol):
    """What the protocol hands requests to."""

    def head(self, exchange: Exchange) -> bool:
        """A header section is in: route it. True to stream its body, False to buffer it."""

    def start(self, exchange: Exchange) -> None:
        """Its turn on the connection came: answer it (`respond()` or the streaming calls)."""

    def finished(self, exchange: Exchange) -> None:
        """It was answered, or its connection was lost: log it, release what it held."""


class _Reject(Exception):
    """Raised from a parser callback to answer `status` and close."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


class HttpProtocol(asyncio.Protocol):
    __slots__ = (
        "app",
        "connections",
        "limits",
        "loop",
        "parser",
        "transport",
        "flow",
        "client",
        "peer",
        "url",
        "headers",
        "head_bytes",
        "reading",
        "chunks",
        "body_bytes",
        "expect",
        "length",
        "queue",
        "current",
        "closing",
        "stepping",
        "deferred",
        "read_paused",
        "deadline",
        "phase",
        "tunnel",
    )

    def __init__(
        self, app: Application, connections: Connections, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.app = app
        self.connections = connections
        self.limits = connections.limits
        self.loop = loop
        self.parser = HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.flow = WriteFlow(loop)
        self.client = "-"
        self.peer: tuple = ("", 0)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.reading: Exchange | None = None  # the request being read
        self.chunks: list[bytes] = []
        self.body_bytes = 0
        self.expect = False
        self.length = -1
        self.queue: deque[Exchange] = deque()
        self.current: Exchange | None = None  # the request being answered
        self.closing = False
        self.stepping = False
        self.deferred: _Reject | None = None
        self.read_paused = False
        self.deadline = 0.0
        self.phase = AWAITING_REQUEST
        self.tunnel: Tunnel | None = None

    # -- for exchanges (`exchange.Connection`) ---------------------------------------
    def write(self, data: bytes) -> None:
        if not self.closing:
            self.transport.write(data)

    def close(self) -> None:
        """Close after what was written has been sent."""
        if not self.closing:
            self.closing = True
            self.deadline = 0.0
            self.connections.open.discard(self)
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection without sending what is still buffered (a broken response)."""
        self.close()
        self.transport.abort()

    def pause_reading(self) -> None:
        if not self.read_paused and not self.closing:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.closing:
            self.read_paused = False
            self.transport.resume_reading()
            if self.phase == READING_BODY:  # time paused by us is not the client's
                self.deadline = self.connections.now + self.limits.body_timeout

    def start_tunnel(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel
        self.resume_reading()

    def exchange_done(self, exchange: Exchange) -> None:
        """`exchange` is answered: close if it must not be kept, log it, go on with the next."""
        if not exchange.keep_alive and self.tunnel is None:
            self.close()
        self.app.finished(exchange)
        if self.current is exchange:
            self.current = None
            self._next()

    # -- connection events ---------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        connections = self.connections
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = peer
            self.client = format_client(peer)
        if len(connections.open) >= self.limits.max_connections:
            diag(f"{self.client}: connection refused: {self.limits.max_connections} open")
            transport.abort()
            self.closing = True
            return
        connections.open.add(self)
        self.phase = READING_HEAD
        self.deadline = connections.now + self.limits.header_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.connections.open.discard(self)
        self.queue.clear()
        for exchange in (self.reading, self.current):
            if exchange is not None:
                exchange.lost()
        if self.tunnel is not None:
            self.tunnel.lose()
        self.flow.close()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.feed(data)
            return
        if self.closing:
            return
        if self.phase == READING_HEAD and self.head_bytes:
            # a header section arriving in pieces: bound what llhttp buffers for us
            self.head_bytes += len(data)
            if self.head_bytes > self.limits.max_header_bytes + 65536:
                self._reject(_Reject(431, "header section too large"))
                return
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as upgrade:
            self._upgraded(data[upgrade.args[0] :])
        except HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Reject):
                self._reject(cause)
            else:
                diag(f"{self.client}: internal error in parser callback: {cause!r}")
                self._reject(_Reject(500, "internal error"))
        except HttpParserError as exc:
            self._reject(_Reject(400, f"malformed request: {exc}"))

    def pause_writing(self) -> None:
        self.flow.pause()

    def resume_writing(self) -> None:
        self.flow.resume()
        self._next()

    # -- parser callbacks ------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.head_bytes = 1
        self.chunks = []
        self.body_bytes = 0
        self.expect = False
        self.length = -1
        if self.phase != READING_HEAD:
            self.phase = READING_HEAD
            self.deadline = self.connections.now + self.limits.header_timeout

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.head_bytes += len(name) + len(value) + 4
        if len(name) == 6 and name.lower() == b"expect":
            self.expect = value.lower() == b"100-continue"
        elif len(name) == 14 and name.lower() == b"content-length":
            self.length = int(value) if value.isdigit() else -1

    def on_headers_complete(self) -> None:
        limits = self.limits
        if self.head_bytes > limits.max_header_bytes:
            raise _Reject(431, "header section too large")
        parser = self.parser
        request = Request(
            parser.get_method(),
            self.url,
            self.headers,
            b"",
            self.peer,
            parser.get_http_version(),
        )
        keep_alive = parser.should_keep_alive() and not self.connections.stopping
        exchange = Exchange(self, request, self.client, keep_alive, self.loop)
        self.reading = exchange
        self.phase = READING_BODY
        self.deadline = self.connections.now + limits.body_timeout
        streamed = self.app.head(exchange)
        if streamed:
            exchange.open_body()
        elif self.length > limits.max_body_bytes:
            raise _Reject(413, f"body of {self.length} bytes over the limit")
        if self.expect and request.http_version == "1.1":
            if self.current is None and not self.queue:
                self.transport.write(_CONTINUE)
                self.expect = False  # answered: _next() must not send it again
        else:
            self.expect = False
        if streamed:
            self._enqueue(exchange)

    def on_body(self, chunk: bytes) -> None:
        self.deadline = self.connections.now + self.limits.body_timeout
        exchange = self.reading
        if exchange.streamed:
            exchange.feed(chunk)
            return
        self.body_bytes += len(chunk)
        if self.body_bytes > self.limits.max_body_bytes:
            raise _Reject(413, "body over the limit")
        self.chunks.append(chunk)

    def on_message_complete(self) -> None:
        exchange, self.reading = self.reading, None
        self.head_bytes = 0
        self.phase = ANSWERING  # idle (keep-alive) once it is answered
        self.deadline = 0.0
        if exchange.streamed:
            exchange.feed_eof()
            return
        chunks = self.chunks
        if chunks:
            exchange.request.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.chunks = []
        if self.current is None and not self.queue and not self.stepping:
            self.stepping = True  # the common case: nothing ahead of it on this connection
            try:
                self._start(exchange)
            finally:
                self.stepping = False
            if self.current is None:
                self._next()
        else:
            self._enqueue(exchange)

    # -- answering requests, in order ---------------------------------------------
    def _enqueue(self, exchange: Exchange) -> None:
        self.queue.append(exchange)
        if len(self.queue) > self.limits.max_pipeline:
            self.pause_reading()
        self._next()

    def _start(self, exchange: Exchange) -> None:
        self.current = exchange
        exchange.started_at = perf_counter()
        self.app.start(exchange)

    def _next(self) -> None:
        """Start queued requests while the connection is free (a loop, never recursion)."""
        if self.stepping:
            return
        self.stepping = True
        try:
            while self.current is None and not self.closing and not self.flow.paused:
                if self.tunnel is not None:
                    self.deadline = 0.0  # a tunnel lives until either side closes
                    break
                if self.queue:
                    exchange = self.queue.popleft()
                    if self.read_paused and len(self.queue) <= self.limits.max_pipeline // 2:
                        self.resume_reading()
                    self._start(exchange)
                    continue
                if self.deferred is not None:
                    self._reject(self.deferred)
                elif self.expect and self.phase == READING_BODY:
                    self.expect = False
                    self.transport.write(_CONTINUE)
                elif self.phase == ANSWERING:
                    self.phase = AWAITING_REQUEST
                    self.deadline = self.connections.now + self.limits.keepalive_timeout
                break
        finally:
            self.stepping = False

    def _reject(self, problem: _Reject) -> None:
        """Answer a protocol-level problem and close, after the responses already owed."""
        reading = self.reading
        if self.current is not None or self.queue:
            if reading is not None and reading.streamed:  # its handler must learn it broke
                reading.lost()
                self.reading = None
            self.deferred = problem
            self.pause_reading()
            return
        self.deferred = None
        self.reading = None
        if reading is not None and reading.streamed:
            reading.lost()
        if reading is None:  # the headers were not all read; the request line may have been
            line = self.phase == READING_HEAD and self.url
            method = self.parser.get_method() if line else b"-"
            unread = Request(method, self.url if line else b"-", [], b"", self.peer)
            reading = Exchange(self, unread, self.client, False, self.loop)
        reading.keep_alive = False
        diag(f"{self.client}: {problem.status}: {problem}")
        self.current = reading
        reading.started_at = perf_counter()
        reading.respond(Response(f"{problem}\n", problem.status))

    def timed_out(self) -> None:
        """The listener's tick found this connection past its deadline."""
        phase = self.phase
        if phase == AWAITING_REQUEST or (phase == READING_HEAD and not self.head_bytes):
            self.close()  # an idle keep-alive connection: nothing is owed
        elif self.current is None or (phase == READING_HEAD and self.reading is None):
            self._reject(_Reject(408, "client too slow"))  # deferred behind what is owed
        elif self.reading is not None and self.reading.streamed and not self.read_paused:
            # a streamed body stalled while its handler runs: nothing can be answered
            # in order any more, so close (the handler sees the client go away)
            diag(f"{self.client}: client too slow sending a streamed body: closing")
            self.abort()

    def close_idle(self) -> None:
        """Graceful stop: close now if nothing is owed on this connection."""
        if (
            self.current is None
            and not self.queue
            and self.phase in (AWAITING_REQUEST, READING_HEAD)
        ):
            if not self.head_bytes:
                self.close()

    # -- upgrade ---------------------------------------------------------------
    def _upgraded(self, rest: bytes) -> None:
        """The parser stopped after an `Upgrade` request: only a streamed exchange may take over."""
        exchange = self.queue[-1] if self.queue else self.current
        if exchange is not None and exchange.streamed:
            exchange.upgrade_ready(rest)
            return
        if exchange is not None:
            exchange.keep_alive = False  # the bytes after it are not HTTP we can parse
        self.pause_reading()
