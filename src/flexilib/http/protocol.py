"""The HTTP/1.1 connection protocol: flexilib's hot path, in one place.

httptools (llhttp) parses; this class turns its callbacks into `Request`s,
routes each one, runs its handler and writes the response, in order, per
connection. Pipelined requests queue behind the one being answered.

Buffered kinds (`sync`, `async`) are started when the whole request is in.
`stream` kinds (reverse proxy) are started as soon as the header section is
in and read the body through their `Exchange` while it arrives.

Timeouts cost nothing per request: each connection keeps a deadline on a
coarse clock and the server's one-second tick (`Server.tick`) closes the
ones that are past it.
"""

from __future__ import annotations

import asyncio
import functools
import traceback
from collections import deque
from time import perf_counter
from typing import TYPE_CHECKING

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser

from flexilib.http.exchange import Exchange
from flexilib.http.status import status_line
from flexilib.log import diag, format_client
from flexilib.request import Request
from flexilib.response import Response
from flexilib.runtime.handler import HandlerError

if TYPE_CHECKING:
    from flexilib.server.worker import Server

__all__ = ["HttpProtocol", "encode_headers"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE = b"Connection: close\r\n"
_KEEP = b"Connection: keep-alive\r\n"
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})
_ERROR_TEXT = {500: b"Internal Server Error\n", 503: b"Handler not available\n"}
_LARGE = 64 * 1024  # bodies above this are written apart from the head, not copied into it

# what the connection is waiting for, for the timeout tick
IDLE, HEAD, BODY, BUSY = 0, 1, 2, 3


class _Reject(Exception):
    """Raised from a parser callback to answer `status` and close."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


class _Job:
    """One request on its way through the connection."""

    __slots__ = ("request", "keep_alive", "rule", "exchange", "slot", "handler", "start", "head")

    def __init__(self, request: Request, keep_alive: bool, rule, exchange: Exchange | None):
        self.request = request
        self.keep_alive = keep_alive
        self.rule = rule
        self.exchange = exchange
        self.slot = None
        self.handler = None  # the version it runs on, handed back to the slot when done
        self.start = 0.0
        self.head = request.raw_method == b"HEAD"


def encode_headers(headers: list[tuple[str, str]]) -> tuple[bytes, bool]:
    """Python handlers' header list -> (wire bytes, has Content-Type); HandlerError on CR/LF/NUL.

    Handlers tend to send the same headers every time, so the encoding of a
    given list is remembered (a bounded cache keyed by its contents).
    """
    return _encode(tuple(headers))


@functools.lru_cache(maxsize=512)
def _encode(headers: tuple[tuple[str, str], ...]) -> tuple[bytes, bool]:
    lines = []
    typed = False
    for name, value in headers:
        if not name or any(c in name for c in "\r\n\0:") or any(c in value for c in "\r\n\0"):
            raise HandlerError(f"response header {name!r} holds CR, LF, NUL or a bad name")
        lower = name.lower()
        if lower in _FRAMING:
            continue
        typed = typed or lower == "content-type"
        lines.append(f"{name}: {value}\r\n")
    try:
        return "".join(lines).encode("latin-1"), typed
    except UnicodeEncodeError:
        raise HandlerError("a response header is not latin-1 text") from None


class HttpProtocol(asyncio.Protocol):
    __slots__ = (
        "server",
        "limits",
        "parser",
        "transport",
        "client",
        "peer",
        "url",
        "headers",
        "head_bytes",
        "job",
        "chunks",
        "body_bytes",
        "expect",
        "length",
        "exchange",
        "queue",
        "current",
        "closing",
        "stepping",
        "deferred",
        "read_paused",
        "write_paused",
        "drain",
        "deadline",
        "waiting",
        "tunnel",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.limits = server.limits
        self.parser = HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client = "-"
        self.peer: tuple = ("", 0)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.job: _Job | None = None  # the request whose body is arriving
        self.chunks: list[bytes] = []
        self.body_bytes = 0
        self.expect = False
        self.length = -1
        self.exchange: Exchange | None = None
        self.queue: deque[_Job] = deque()
        self.current: _Job | None = None
        self.closing = False
        self.stepping = False
        self.deferred: _Reject | None = None
        self.read_paused = False
        self.write_paused = False
        self.drain: asyncio.Future | None = None
        self.deadline = 0.0
        self.waiting = IDLE
        self.tunnel = None

    # -- connection events ---------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        server = self.server
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = peer
            self.client = format_client(peer)
        if len(server.connections) >= self.limits.max_connections:
            diag(f"{self.client}: connection refused: {self.limits.max_connections} open")
            transport.abort()
            self.closing = True
            return
        server.connections.add(self)
        self.waiting = HEAD
        self.deadline = server.now + self.limits.header_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.connections.discard(self)
        self.queue.clear()
        if self.exchange is not None:
            self.exchange.lost()
        if self.current is not None and self.current.exchange is not None:
            self.current.exchange.lost()
        if self.tunnel is not None:
            self.tunnel.lost()
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.feed(data)
            return
        if self.closing:
            return
        if self.waiting == HEAD and self.head_bytes:
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
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)
        self.drain = None
        self._next()

    async def drained(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        if self.write_paused and not self.closing:
            if self.drain is None:
                self.drain = self.server.loop.create_future()
            await self.drain

    def pause_reading(self) -> None:
        if not self.read_paused and not self.closing:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.closing:
            self.read_paused = False
            self.transport.resume_reading()
            if self.waiting == BODY:  # time paused by us is not the client's
                self.deadline = self.server.now + self.limits.body_timeout

    # -- parser callbacks ------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.head_bytes = 1
        self.chunks = []
        self.body_bytes = 0
        self.expect = False
        self.length = -1
        if self.waiting != HEAD:
            self.waiting = HEAD
            self.deadline = self.server.now + self.limits.header_timeout

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
        keep_alive = parser.should_keep_alive() and not self.server.stopping
        rule = self.server.router.match(request)
        self.waiting = BODY
        self.deadline = self.server.now + limits.body_timeout
        if rule is not None and rule.slot.streaming:
            self.exchange = Exchange(self, request)
            job = _Job(request, keep_alive, rule, self.exchange)
        else:
            if self.length > limits.max_body_bytes:
                raise _Reject(413, f"body of {self.length} bytes over the limit")
            job = _Job(request, keep_alive, rule, None)
        self.job = job
        if self.expect and request.http_version == "1.1":
            if self.current is None and not self.queue:
                self.transport.write(_CONTINUE)
                self.expect = False  # answered: _next() must not send it again
            else:
                self.expect = True  # sent by _next() when the connection gets to it
        else:
            self.expect = False
        if job.exchange is not None:
            self._enqueue(job)

    def on_body(self, chunk: bytes) -> None:
        self.deadline = self.server.now + self.limits.body_timeout
        if self.exchange is not None:
            self.exchange.feed(chunk)
            return
        self.body_bytes += len(chunk)
        if self.body_bytes > self.limits.max_body_bytes:
            raise _Reject(413, "body over the limit")
        self.chunks.append(chunk)

    def on_message_complete(self) -> None:
        job, self.job = self.job, None
        self.head_bytes = 0
        if self.exchange is not None:
            self.exchange.feed_eof()
            self.exchange = None
            self.waiting = BUSY  # as for buffered kinds: idle (keep-alive) once it is answered
            self.deadline = 0.0
            return
        chunks = self.chunks
        if chunks:
            job.request.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.chunks = []
        self.waiting = BUSY
        self.deadline = 0.0
        if self.current is None and not self.queue and not self.stepping:
            self.stepping = True  # the common case: nothing ahead of it on this connection
            try:
                self._start(job)
            finally:
                self.stepping = False
            if self.current is None:
                self._next()
        else:
            self._enqueue(job)

    # -- running requests, in order ------------------------------------------------
    def _enqueue(self, job: _Job) -> None:
        self.queue.append(job)
        if len(self.queue) > self.limits.max_pipeline:
            self.pause_reading()
        self._next()

    def _next(self) -> None:
        """Start queued requests while the connection is free (a loop, never recursion)."""
        if self.stepping:
            return
        self.stepping = True
        try:
            while self.current is None and not self.closing and not self.write_paused:
                if self.tunnel is not None:
                    self.deadline = 0.0  # a tunnel lives until either side closes
                    break
                if self.queue:
                    job = self.queue.popleft()
                    if self.read_paused and len(self.queue) <= self.limits.max_pipeline // 2:
                        self.resume_reading()
                    self._start(job)
                    continue
                if self.deferred is not None:
                    self._reject(self.deferred)
                elif self.expect and self.waiting == BODY:
                    self.expect = False
                    self.transport.write(_CONTINUE)
                elif self.waiting == BUSY:
                    self.waiting = IDLE
                    self.deadline = self.server.now + self.limits.keepalive_timeout
                break
        finally:
            self.stepping = False

    def _start(self, job: _Job) -> None:
        self.current = job
        job.start = perf_counter()
        rule = job.rule
        if rule is None:
            diag(f"{self.client}: no route for {job.request.target}")
            self._send_error(job, 404, "No route for this request\n")
            return
        slot = rule.slot
        handler = slot.acquire()
        if handler is None:
            slot.wait(lambda h, error: self._ready(job, h, error))
            return
        job.slot = slot
        self._dispatch(job, handler)

    def _ready(self, job: _Job, handler, error: BaseException | None) -> None:
        if error is not None:
            response = getattr(error, "response", None)
            if response is not None:
                self._write(job, response)
            else:
                status = error.status if isinstance(error, HandlerError) else 503
                self._send_error(job, status, "Handler not available\n")
            return
        job.slot = job.rule.slot
        self._dispatch(job, handler)

    def _dispatch(self, job: _Job, handler) -> None:
        job.handler = handler
        mode = handler.mode
        if mode == "sync":
            self.server.dispatcher.run(handler, job.request, self._on_result)
        elif mode == "async":
            self.server.loop.create_task(self._run_async(job, handler))
        else:
            self.server.loop.create_task(self._run_stream(job, handler))

    async def _run_async(self, job: _Job, handler) -> None:
        try:
            result = await handler.call_async(job.request)
        except BaseException as exc:  # noqa: BLE001 - every failure is answered and logged
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self._on_result(None, exc)
            return
        self._on_result(result, None)

    async def _run_stream(self, job: _Job, handler) -> None:
        exchange = job.exchange
        try:
            await handler.stream(job.request, exchange)
        except Exception as exc:  # noqa: BLE001
            self._handler_failed(exc, job)
            if not exchange.started:
                exchange.start(500, [(b"Content-Type", b"text/plain")], length=22)
                exchange.write(b"Internal Server Error\n")
            else:
                exchange.abort()
        exchange.finish()

    def _handler_failed(self, exc: BaseException, job: _Job) -> int:
        where = job.rule.spec.target if job.rule is not None else "-"
        if isinstance(exc, HandlerError):
            diag(f"{self.client}: {job.request.method} {job.request.target}: {exc}")
            return exc.status
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
        diag(f"{self.client}: {job.request.method} {job.request.target}: {where} raised:\n{text}")
        return 500

    # -- writing responses -----------------------------------------------------
    def _on_result(self, response: Response | None, error: BaseException | None) -> None:
        job = self.current
        if error is not None:
            status = self._handler_failed(error, job)
            response = getattr(error, "response", None) or Response(
                _ERROR_TEXT.get(status, b""), status
            )
        if self.closing:
            self._finished(job, response.status, len(response.body), 0, 0)
            return
        try:
            self._write(job, response)
        except Exception as exc:  # noqa: BLE001 - a bad response object is the handler's failure
            self._handler_failed(exc, job)
            self._send_error(job, 500, "Internal Server Error\n")

    def _write(self, job: _Job, response: Response) -> None:
        ttfb = perf_counter()
        raw = response.raw_headers
        if response.headers:
            extra, typed = encode_headers(response.headers)
            raw += extra
            if not typed and not raw.lower().count(b"content-type:"):
                raw += b"Content-Type: text/plain\r\n"
        elif not raw:
            raw = b"Content-Type: text/plain\r\n"
        reason = response.reason
        if reason is not None and any(c in reason for c in "\r\n\0"):
            raise HandlerError("reason phrase holds CR, LF or NUL")
        if type(response.status) is not int or not 100 <= response.status <= 999:
            raise HandlerError(f"status {response.status!r} is not an integer in 100-999")
        body = response.body
        alloc = response.alloc or len(body) + len(raw)
        keep = job.keep_alive and not self.server.stopping
        head = b"".join(
            (
                status_line(response.status, reason),
                self.server.common_headers,
                raw,
                b"Content-Length: %d\r\n" % len(body),
                (_KEEP if job.request.http_version == "1.0" else b"") if keep else _CLOSE,
                b"\r\n",
            )
        )
        transport = self.transport
        if job.head or not body:
            transport.write(head)
        elif len(body) > _LARGE:
            transport.write(head)
            transport.write(body)
        else:
            transport.write(head + body)
        if not keep:
            self._close()
        self._finished(job, response.status, len(body), response.prealloc, alloc, ttfb)

    def _send_error(self, job: _Job, status: int, text: str) -> None:
        response = Response(text, status)
        self._write(job, response)

    def _finished(self, job, status, size, prealloc, alloc, ttfb=None) -> None:
        """Log the request, release its handler and move on to the next one."""
        end = perf_counter()
        request = job.request
        self.server.log.log(
            self.client,
            request.raw_method,
            request.raw_target,
            request.http_version,
            status,
            (ttfb or end) - job.start,
            size,
            end - job.start,
            prealloc,
            alloc,
        )
        if job.slot is not None:
            job.slot.release(job.handler)
            job.slot = None
        if self.current is job:
            self.current = None
            self._next()

    def _reject(self, problem: _Reject) -> None:
        """Answer a protocol-level problem and close, after the responses already owed."""
        if self.current is not None or self.queue:
            if self.exchange is not None:  # a streamed body that broke: its handler must know
                self.exchange.lost()
                self.exchange = None
            self.deferred = problem
            self.pause_reading()
            return
        self.deferred = None
        diag(f"{self.client}: {problem.status}: {problem}")
        if self.exchange is not None:
            self.exchange.lost()
            self.exchange = None
        if self.job is not None:
            request = self.job.request
        else:
            request = Request(b"-", b"-", [], b"", self.peer, "1.1")
        job = _Job(request, False, None, None)
        job.start = perf_counter()
        self.current = job
        self._write(job, Response(f"{problem}\n", problem.status))

    def timed_out(self) -> None:
        """The server's tick found this connection past its deadline."""
        if self.waiting == IDLE or (self.waiting == HEAD and not self.head_bytes):
            self._close()  # an idle keep-alive connection: nothing is owed
        elif self.current is None or (self.waiting == HEAD and self.exchange is None):
            self._reject(_Reject(408, "client too slow"))  # deferred behind what is owed
        elif self.exchange is not None and not self.read_paused:
            # a streamed body stalled while its handler runs: nothing can be answered
            # in order any more, so close (the handler sees the client go away)
            diag(f"{self.client}: client too slow sending a streamed body: closing")
            self.close_now()

    def _close(self) -> None:
        """Close after what was written has been sent."""
        if not self.closing:
            self.closing = True
            self.deadline = 0.0
            self.server.connections.discard(self)
            self.transport.close()

    def close_now(self) -> None:
        """Drop the connection without sending what is still buffered (a broken response)."""
        self._close()
        self.transport.abort()

    def write(self, data: bytes) -> None:
        """Raw bytes to the client (used by Exchange and Tunnel)."""
        if not self.closing:
            self.transport.write(data)

    def exchange_done(self, exchange: Exchange) -> None:
        """A stream handler finished its response."""
        job = self.current
        if job is None or job.exchange is not exchange:
            return
        if self.tunnel is not None:  # the tunnel owns the connection from here on
            self._finished(job, exchange.status, exchange.sent, 0, 0)
            return
        if not exchange.keep_alive or not job.keep_alive:
            self._close()
        self._finished(job, exchange.status, exchange.sent, 0, exchange.sent)

    def close_idle(self) -> None:
        """Graceful stop: close now if nothing is owed on this connection."""
        if self.current is None and not self.queue and self.waiting in (IDLE, HEAD):
            if not self.head_bytes:
                self._close()

    # -- upgrade ---------------------------------------------------------------
    def _upgraded(self, rest: bytes) -> None:
        """The parser stopped after an `Upgrade` request: only a stream handler may take over."""
        job = self.queue[-1] if self.queue else self.current
        if job is not None and job.exchange is not None and job.exchange.upgrade_ready(rest):
            return
        if job is not None:
            job.keep_alive = False  # the bytes after it are not HTTP we can parse
        self.pause_reading()
