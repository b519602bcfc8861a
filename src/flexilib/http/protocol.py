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
A second deadline, `send_deadline`, runs while the transport's write buffer
is over its high-water mark: a client that reads nothing of what was written
for `send_timeout` is dropped (nginx's `send_timeout`). While it is over,
no more requests are read either, so a client that pipelines requests and
reads no answers costs one buffered response, not a queue of them.

Checks on the header section (nginx's answers): a version other than
HTTP/1.0 or 1.1 is 505; an HTTP/1.1 request without `Host`, or any request
with two, is 400; header names with `_` are dropped unless
`underscores_in_headers`; a path that cannot be normalised
(`flexilib.http.target`) is 400. `Content-Length` is read as llhttp reads
it, optional whitespace trimmed.

Trailer fields after a chunked body are counted against
`max_header_bytes` (431) and discarded, as nginx does: they never become
headers. The body timer keeps running while they arrive.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Protocol

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser

from flexilib.http.connections import Connections
from flexilib.http.exchange import Exchange, Tunnel
from flexilib.http.flow import WriteFlow
from flexilib.http.target import normalize_path
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

# Why reading from the client is paused (`HttpProtocol.paused_by`, a bit set): it
# resumes only once no reason is left, so one cause cannot undo another's pause.
_CONSUMER = 1  # an exchange's body buffer is full, or an upgrade waits for its tunnel
_PIPELINE = 2  # too many parsed requests wait on this connection
_WRITING = 4  # the client is not reading our responses
_HALT = 8  # a rejected request or an unparsable upgrade: nothing more is read
_MAX_READ = 256 * 1024  # the most one data_received() brings (uvloop's read buffer)
# a byte as an int: `int in bytes` is one memchr, 5x faster than `bytes.find()`, whose
# argument parsing dominates on a short name (timeit, Python 3.11)
_UNDERSCORE = ord("_")


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
        "paused_by",
        "deadline",
        "send_deadline",
        "trailing",
        "trailer_bytes",
        "hosts",
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
        # None once the header section is complete: fields after it are trailers
        self.headers: list[tuple[bytes, bytes]] | None = []
        self.head_bytes = 0
        self.reading: Exchange | None = None  # the request being read
        self.chunks: list[bytes] = []
        self.body_bytes = 0
        self.expect = False
        self.length = -1
        # pipelined requests, at most max_pipeline (+1): a list, since an empty deque
        # allocates a 64-slot block, 0.7 MB per 1,000 idle connections (tracemalloc)
        self.queue: list[Exchange] = []
        self.current: Exchange | None = None  # the request being answered
        self.closing = False
        self.stepping = False
        self.deferred: _Reject | None = None
        self.paused_by = 0
        self.deadline = 0.0
        self.send_deadline = 0.0  # while the client reads nothing of what we wrote
        self.trailing = False  # after a chunk header, before its data: trailers may come
        self.trailer_bytes = 0
        self.hosts = 0
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

    @property
    def read_paused(self) -> bool:
        return bool(self.paused_by)

    def pause_reading(self, reason: int = _CONSUMER) -> None:
        if self.closing:
            return
        if not self.paused_by:
            self.transport.pause_reading()
        self.paused_by |= reason

    def resume_reading(self, reason: int = _CONSUMER) -> None:
        if not self.paused_by & reason or self.closing:
            return
        self.paused_by &= ~reason
        if not self.paused_by:
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
        # the parser holds bound methods of this protocol: a cycle only the garbage
        # collector would free. Breaking it frees the connection at once; with
        # `Connection: close` traffic that was 12 objects a connection left to gen-0
        # collections (gc.DEBUG_SAVEALL), about 6% of a connection's instructions.
        self.parser = None

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
        elif self.trailing:
            # past a chunk header with no data yet: maybe trailer fields, which
            # httptools gathers whole before calling on_header; bound them too.
            # One read may instead be the chunk's data (then on_body resets the
            # count), so the bound allows one whole read on top.
            self.trailer_bytes += len(data)
            if self.trailer_bytes > self.limits.max_header_bytes + 65536 + _MAX_READ:
                self._reject(_Reject(431, "trailer section too large"))
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
        self.send_deadline = self.connections.now + self.limits.send_timeout
        reading = self.reading
        if self.tunnel is None and (reading is None or not reading.streamed):
            # read no more requests while the client reads no responses; a streamed
            # body (the proxy's) keeps flowing: its own buffers bound it
            self.pause_reading(_WRITING)

    def resume_writing(self) -> None:
        self.send_deadline = 0.0
        self.flow.resume()
        self.resume_reading(_WRITING)
        self._next()

    # -- parser callbacks ------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.head_bytes = 1
        self.hosts = 0
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
        self.head_bytes += len(name) + len(value) + 4
        headers = self.headers
        if headers is None:  # a trailer field: counted, then discarded
            if self.head_bytes > self.limits.max_header_bytes:
                raise _Reject(431, "header section with trailers too large")
            return
        if _UNDERSCORE in name and not self.limits.underscores_in_headers:
            return
        headers.append((name, value))
        size = len(name)
        if size == 4 and name.lower() == b"host":
            self.hosts += 1
        elif size == 6 and name.lower() == b"expect":
            self.expect = value.lower() == b"100-continue"
        elif size == 14 and name.lower() == b"content-length":
            value = value.strip(b" \t")  # llhttp trims optional whitespace: so do we
            self.length = int(value) if value.isdigit() else -1

    def on_chunk_header(self) -> None:
        self.trailing = True  # the last chunk's header is followed by the trailers

    def on_chunk_complete(self) -> None:
        self.trailing = False
        self.trailer_bytes = 0

    def on_headers_complete(self) -> None:
        limits = self.limits
        if self.head_bytes > limits.max_header_bytes:
            raise _Reject(431, "header section too large")
        headers, self.headers = self.headers, None
        parser = self.parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise _Reject(505, f"HTTP/{version} is not supported")
        if self.hosts != 1 and (self.hosts or version == "1.1"):
            raise _Reject(400, "no Host header" if not self.hosts else "more than one Host header")
        url = self.url
        try:
            normalized = normalize_path(url.partition(b"?")[0])
        except ValueError as exc:
            raise _Reject(400, str(exc)) from None
        request = Request(
            parser.get_method(), url, headers, b"", self.peer, version, "http", normalized
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
        self.trailing = False
        self.trailer_bytes = 0
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
        self.trailing = False
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
            self.pause_reading(_PIPELINE)
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
                    exchange = self.queue.pop(0)
                    if len(self.queue) <= self.limits.max_pipeline // 2:
                        self.resume_reading(_PIPELINE)
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
            self.pause_reading(_HALT)
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
        """The listener's tick found this connection past its deadline (or its send deadline)."""
        if 0 < self.send_deadline < self.connections.now:
            diag(f"{self.client}: read nothing for {self.limits.send_timeout:g}s: closing")
            self.abort()
            return
        if self.paused_by & _WRITING:
            return  # we stopped reading: the send deadline, not the client's, applies
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
        self.pause_reading(_HALT)
