"""One connection to an upstream: requests written with flow control, responses parsed by llhttp.

The response arrives as a head (`await head()`) and then body pieces
(`await read()`, b"" at its end). Body bytes wait in a `http.flow.ReadBuffer`:
past its high-water mark reading from the upstream pauses until the proxy has
passed them on, so a fast upstream and a slow client cost a buffer, not the body.

Waits on the upstream are timed (`timeout`, the rule's `read_timeout`),
except while a request body is still being written (`sending`): an upstream
owes no answer before it has the whole request, as nginx times it.

After a `101 Switching Protocols` the connection turns `raw`: bytes are no
longer parsed, and `read()` returns them as they come.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from flexilib.http.flow import ReadBuffer

__all__ = [
    "UpstreamClosed",
    "UpstreamConnection",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamTimeout",
]

# how the response body is delimited
NONE, LENGTH, CHUNKED, CLOSE = 0, 1, 2, 3


class UpstreamError(Exception):
    """The upstream failed this request; `str()` says how, for the log line."""


class UpstreamClosed(UpstreamError):
    """The connection closed or broke before the response was complete."""


class UpstreamTimeout(UpstreamError):
    """The upstream sent nothing (or read nothing) for `read_timeout` seconds."""


class UpstreamProtocolError(UpstreamError):
    """The upstream's response is not valid HTTP/1.x."""


class UpstreamConnection(asyncio.Protocol):
    """See the module docstring. Created by `ConnectionPool`, which it tells when it opens and closes."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
        opened: Callable[[UpstreamConnection], None],
        closed: Callable[[UpstreamConnection], None],
    ) -> None:
        self.loop = loop
        self.timeout = timeout  # the rule's read_timeout
        self._opened = opened
        self._closed = closed
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False  # handed out from the idle pool (it may have gone stale)
        self.idle_since = 0.0
        self.sending = False
        self.raw = False
        self._parser: HttpResponseParser | None = None
        self._active = False  # a request is out and its response not yet complete
        self._head_only = False
        self._interim = False  # inside a 1xx response other than 101: skipped
        self._error: UpstreamError | None = None
        self._body = ReadBuffer(self._pause_reading, self._resume_reading)
        self._write_paused = False
        self._waiter: asyncio.Future | None = None  # the reader (head, body)
        self._drainer: asyncio.Future | None = None  # the writer (request body)
        self._timer: asyncio.TimerHandle | None = None  # the reader's
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.framing = NONE
        self.length: int | None = None
        self.received = False  # any byte of the response arrived

    # -- used by the proxy -------------------------------------------------------
    def begin(self, head_only: bool) -> None:
        """A request is about to be written; `head_only` for HEAD (a response without body)."""
        self._reset()
        self._active = True
        self._head_only = head_only
        self._error = None
        if self._parser is None:
            self._parser = HttpResponseParser(self)

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def writelines(self, pieces: list[bytes]) -> None:
        if not self.closed:
            self.transport.writelines(pieces)

    async def drain(self, timed: bool = True) -> None:
        """Wait while the upstream reads slower than we write; UpstreamError if it failed."""
        while self._write_paused and not self.closed:
            await self._wait(timed, drain=True)
        if self._error is not None:
            raise self._error

    async def head(self) -> None:
        """Wait for the response's status line and headers."""
        while not self.head_done:
            if self._error is not None:
                raise self._error
            await self._wait(not self.sending)

    async def read(self, timed: bool = True) -> bytes:
        """The next piece of the body (or of the raw stream); b"" at its end."""
        while not self._body:
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait(timed)
        return self.buffered()

    def buffered(self) -> bytes:
        """What has arrived of the body and not been read yet (b"" if nothing), at once."""
        return self._body.take_all()

    def _pause_reading(self) -> None:
        self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self.closed:
            self.transport.resume_reading()

    def done_sending(self) -> None:
        """The request body is all written (or abandoned): waits for the response are timed now."""
        self.sending = False
        if self._waiter is not None and self._timer is None:
            self._timer = self.loop.call_later(self.timeout, self._expired)

    def fail(self, error: UpstreamError) -> None:
        """Give up on this connection: whoever waits on it gets `error`."""
        if self._error is None:
            self._error = error
        self.abort()
        self._wake()

    def reusable(self) -> bool:
        """True when a complete response left the connection ready for the next request."""
        return self.complete and self.keep_alive and not self.closed and not self.raw

    def finished(self) -> None:
        self._active = False

    def close(self) -> None:
        """Close after what was written has been sent."""
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # -- waiting -------------------------------------------------------------------
    async def _wait(self, timed: bool, drain: bool = False) -> None:
        waiter = self.loop.create_future()
        timer = self.loop.call_later(self.timeout, self._expired) if timed else None
        if drain:
            self._drainer = waiter
        else:
            self._waiter, self._timer = waiter, timer
        try:
            await waiter
        finally:
            if drain:
                self._drainer = None
            else:
                timer = self._timer  # done_sending() may have armed one meanwhile
                self._waiter = self._timer = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        for waiter in (self._waiter, self._drainer):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _expired(self) -> None:
        self._timer = None
        self.fail(UpstreamTimeout(f"nothing for {self.timeout:g}s (read_timeout)"))

    # -- asyncio.Protocol ------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._closed(self)
        if self._active and not self.complete:
            if self.raw or (self.head_done and self.framing == CLOSE):
                self.complete = True  # the body ends where the connection does
                self.keep_alive = False
            elif self._error is None:
                where = "mid-response" if self.received else "before responding"
                why = f" ({exc})" if exc else ""
                self._error = UpstreamClosed(f"closed the connection {where}{why}")
        self._wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake()

    def data_received(self, data: bytes) -> None:
        if self.raw:
            self._keep(data)
            return
        if not self._active or self.complete:
            self.abort()  # bytes nobody asked for: this connection cannot be trusted again
            return
        self.received = True
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade as upgrade:
            self.raw = True
            self.complete = False  # from here on the stream ends when the connection does
            self._parser = None
            rest = data[upgrade.args[0] :]
            if rest:
                self._keep(rest)
        except HttpParserError as exc:
            self.fail(UpstreamProtocolError(f"sent a malformed response: {exc}"))

    def _keep(self, data: bytes) -> None:
        self._body.put(data)
        self._wake()

    # -- llhttp callbacks ------------------------------------------------------------
    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim = True  # 100 Continue, 103 Early Hints: not passed on
            self.reason = b""
            self.headers = []
            return
        self.status = status
        self.head_done = True
        self.keep_alive = self._parser.should_keep_alive()
        framing = CLOSE
        for name, value in self.headers:
            lower = name.lower()
            if lower == b"transfer-encoding":
                chunked = value.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
                framing = CHUNKED if chunked else CLOSE
                self.length = None
                if not chunked:
                    break
            elif lower == b"content-length" and framing != CHUNKED:
                framing = LENGTH
                self.length = int(value)
        if self._head_only or status in (101, 204, 304):
            # no body whatever the headers say; llhttp cannot be told about HEAD,
            # so this parser is dropped and the next response gets a fresh one
            self.framing = NONE
            self.complete = True
            self._parser = None if status != 101 else self._parser
        else:
            self.framing = framing
            if framing == CLOSE:
                self.keep_alive = False
        self._wake()

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self._keep(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if not self.complete:
            self.complete = True
            self.keep_alive = self.keep_alive and self._parser.should_keep_alive()
            self._wake()
