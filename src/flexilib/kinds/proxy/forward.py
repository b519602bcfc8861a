"""One request through the proxy: pick an upstream, send, stream the answer back.

Failures, each logged once with the upstream's URL:

- connecting fails (refused, unreachable, `connect_timeout`): nothing was
  sent, so the next upstream is tried, whatever the method; the failed one is
  taken out for `fail_timeout`. None left: 502.
- every upstream connection is busy: the request waits for one up to
  `connect_timeout` (a queue, not an instant 502).
- a pooled connection turns out closed before any response byte: an
  idempotent request whose body is in hand (none, or up to `request_buffer`
  bytes, which are read whole before sending) is sent again once, on a new
  connection (the upstream closed an idle connection as we reused it). A
  POST, or a body already streamed away, is never sent twice: 502.
- no response within `read_timeout`: 504, and the upstream is taken out.
- the upstream breaks off mid-response: the client's connection is closed,
  so a truncated body is never presented as complete.

An upstream connection is held only while the upstream works: a request
body up to `request_buffer` is read from the client before a connection is
taken, and the response is read ahead of the client into a `Spool` (memory,
then a temporary file), so the connection goes back to the pool when the
upstream is done and the client is served from the spool. Found by 110 slow
POSTs (or 105 clients not reading a 32 MB response) pinning all 100
connections: every other request got 502 for 40 s.

`Upgrade` is passed on only for the protocols of the rule's `upgrade`
option (default `websocket`); another is sent as a plain request.
"""

from __future__ import annotations

import asyncio

from flexilib.http.status import phrase
from flexilib.kinds.proxy.connection import (
    LENGTH,
    NONE,
    UpstreamClosed,
    UpstreamConnection,
    UpstreamError,
    UpstreamTimeout,
)
from flexilib.kinds.proxy.headers import body_framing, request_head, response_headers
from flexilib.kinds.proxy.options import ProxyOptions
from flexilib.kinds.proxy.pool import ConnectionPool, PoolExhausted
from flexilib.kinds.proxy.spool import Spool
from flexilib.kinds.proxy.tunnel import run_tunnel
from flexilib.kinds.proxy.upstream import Balancer, Upstream
from flexilib.log import diag, format_client
from flexilib.request import Request
from flexilib.runtime.handler import Stream
from flexilib.stats import UPSTREAMS

__all__ = ["Proxy"]

IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))
_TEXT = [(b"Content-Type", b"text/plain")]


class _Retry(Exception):
    """This attempt failed in a way that another attempt may fix."""

    def __init__(self, fresh: bool) -> None:
        super().__init__()
        self.fresh = fresh  # only a new connection will do (the pooled one was stale)


class Proxy:
    """A rule's upstreams, their pools and the balancer, bound to one event loop."""

    def __init__(
        self, upstreams: list[Upstream], options: ProxyOptions, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.options = options
        self.loop = loop
        for upstream in upstreams:
            upstream.pool = ConnectionPool(upstream, options, loop)
        self.upstreams = upstreams
        self.balancer = Balancer(upstreams, options.fail_timeout)

    def close(self) -> None:
        for upstream in self.upstreams:
            upstream.pool.close()

    async def forward(self, request: Request, stream: Stream) -> None:
        """Answer `request` through `stream` from an upstream (see the module docstring)."""
        await _Forwarding(self, request, stream).run()


class _Forwarding:
    """The state of one request on its way through the proxy, across attempts."""

    def __init__(self, proxy: Proxy, request: Request, stream: Stream) -> None:
        self.proxy = proxy
        self.request = request
        self.stream = stream
        self.upgrade = stream.wants_upgrade and _upgrade_allowed(request, proxy.options.upgrade)
        self.client_ip = request.client[0].encode() if request.client else b"unknown"
        chunked, self.length = body_framing(request.raw_headers)
        self.streamed = chunked or bool(self.length)  # the body is copied as it arrives
        self.body = b""
        self.prefix: list[bytes] = []  # the start of a body too large to buffer whole
        # whether a failed attempt may be made again (decided once the body is known)
        self.retry_ok = False
        self.tail: asyncio.Task | None = None  # the client's share of the response

    async def run(self) -> None:
        stream = self.stream
        proxy = self.proxy
        limit = proxy.options.request_buffer
        if self.streamed and (self.length is None or self.length <= limit):
            try:
                pieces, complete = await _read_up_to(stream, limit)
            except ConnectionResetError:
                return  # the client left before its body was in: nobody to answer
            if complete:
                self.body = b"".join(pieces)
                self.streamed, self.length = False, len(self.body)
            else:
                self.prefix = pieces
        self.retry_ok = self.request.raw_method in IDEMPOTENT and not self.streamed
        tried: list[Upstream] = []
        fresh = stale_retried = False
        while True:
            upstream = proxy.balancer.pick(proxy.loop.time(), tried)
            if upstream is None:
                if not tried:
                    self._log(None, "every upstream is taken out after failures")
                _answer(stream, 502, b"Bad Gateway: no upstream available\n")
                return
            try:
                connection = await upstream.pool.acquire(fresh)
            except PoolExhausted as exc:
                self._log(upstream, f"{exc} for {proxy.options.connect_timeout:g}s")
                tried.append(upstream)
                continue
            except (OSError, asyncio.TimeoutError) as exc:
                UPSTREAMS[(upstream.url, "error")] += 1
                why = _connect_error(exc, proxy.options.connect_timeout)
                self._failed(upstream, f"cannot connect: {why}")
                tried.append(upstream)
                fresh = False
                continue
            upstream.outstanding += 1
            try:
                await self._attempt(upstream, connection)
            except _Retry as retry:
                if retry.fresh and not stale_retried:
                    stale_retried = fresh = True
                else:
                    tried.append(upstream)
                    fresh = False
                continue
            finally:
                upstream.outstanding -= 1
                upstream.pool.release(connection)
            if self.tail is not None:
                await self.tail  # the upstream is done and its connection back in the pool
            return

    async def _attempt(self, upstream: Upstream, connection: UpstreamConnection) -> None:
        """One try on one connection; raises _Retry when another try may succeed."""
        request = self.request
        head = request_head(
            request.raw_method,
            upstream.map_target(request.raw_target, request.normalized_path, request.route_prefix),
            request.raw_headers,
            host=upstream.host_header,
            preserve_host=self.proxy.options.preserve_host,
            client_ip=self.client_ip,
            scheme=request.scheme.encode(),
            length=self.length,
            upgrade=self.upgrade,
        )
        connection.begin(head_only=request.raw_method == b"HEAD")
        pump = None
        if self.streamed:
            connection.sending = True
            connection.write(head)
            pump = self.proxy.loop.create_task(
                _send_body(self.stream, connection, self.length is None, self.prefix)
            )
        elif self.body:
            connection.writelines([head, self.body])
        else:
            connection.write(head)
        try:
            await self._respond(upstream, connection)
        finally:
            if pump is not None and not pump.done():
                pump.cancel()  # answered before the whole body was sent: the connection is spent
                connection.abort()

    async def _respond(self, upstream: Upstream, connection: UpstreamConnection) -> None:
        stream = self.stream
        try:
            await connection.head()
        except UpstreamTimeout as exc:
            UPSTREAMS[(upstream.url, "timeout")] += 1
            self._failed(upstream, f"no response: {exc}", 504)
            _answer(stream, 504, b"Gateway Timeout\n")
            return
        except UpstreamError as exc:
            UPSTREAMS[(upstream.url, "error")] += 1
            if stream.client_closed:
                return  # the client went away while sending the body: nothing to answer
            if isinstance(exc, UpstreamClosed) and not connection.received:
                if connection.reused:
                    if self.retry_ok:
                        raise _Retry(fresh=True) from None  # a stale pooled connection
                    self._log(upstream, f"{exc} (on a reused connection; not sent twice)")
                else:
                    self._failed(upstream, str(exc))
                    if self.retry_ok:
                        raise _Retry(fresh=False) from None
            else:
                self._log(upstream, str(exc))
            _answer(stream, 502, b"Bad Gateway\n")
            return
        UPSTREAMS[(upstream.url, "ok")] += 1  # it answered (whatever its status)
        status = connection.status
        if status == 101:
            if not self.upgrade:
                self._log(upstream, "answered 101 to a request that asked for no upgrade")
                _answer(stream, 502, b"Bad Gateway\n")
                return
            stream.start(101, response_headers(connection.headers, upgrade=True))
            await run_tunnel(stream.tunnel(), connection)
            return
        reason = connection.reason
        length = connection.length if connection.framing in (LENGTH, NONE) else None
        stream.start(
            status,
            response_headers(connection.headers),
            None if reason.decode("latin-1") == phrase(status) else reason.decode("latin-1"),
            length,
            connection.buffered(),  # what came with the head (often all of it) goes with it
        )
        options = self.proxy.options
        spool = Spool(self.proxy.loop, options.response_buffer, options.max_temp_file)
        self.tail = self.proxy.loop.create_task(_to_client(stream, spool))
        try:
            while True:
                data = await connection.read()
                if not data:
                    spool.end()
                    return
                spool.put(data)
                await spool.room()
                if stream.client_closed:
                    connection.abort()
                    spool.close()
                    return
        except UpstreamError as exc:
            what = f"{exc} after {stream.sent + spool.pending} body bytes;"
            what += " closing the client's connection"
            if isinstance(exc, UpstreamTimeout):
                self._failed(upstream, what)
            else:
                self._log(upstream, what)
            spool.close()
            stream.abort()

    # -- logging ------------------------------------------------------------------------
    def _failed(self, upstream: Upstream, what: str, status: int | None = None) -> None:
        """An upstream failure: take it out of the pool, and say so in the one log line."""
        proxy = self.proxy
        if proxy.balancer.failed(upstream, proxy.loop.time()):
            what += f"; taken out for {proxy.options.fail_timeout:g}s"
        if status is not None:
            what += f"; answered {status}"
        self._log(upstream, what)

    def _log(self, upstream: Upstream | None, what: str) -> None:
        request = self.request
        where = upstream.url if upstream is not None else "-"
        target = request.raw_target.decode("latin-1")
        client = format_client(request.client)
        diag(f"proxy: {client} {request.method} {target}: upstream {where}: {what}")


async def _send_body(
    stream: Stream, connection: UpstreamConnection, chunked: bool, prefix: list[bytes]
) -> None:
    """Copy the request body upstream as it arrives (after `prefix`, already read)."""
    try:
        pieces = iter(prefix)
        while True:
            data = next(pieces, None) or await stream.receive()
            if not data:
                break
            if chunked:
                connection.writelines([b"%x\r\n" % len(data), data, b"\r\n"])
            else:
                connection.write(data)
            await connection.drain()
        if chunked:
            connection.write(b"0\r\n\r\n")
    except ConnectionResetError:
        connection.fail(UpstreamClosed("client went away mid-body"))
    except UpstreamError:
        pass  # already failed: the response side reports it
    finally:
        connection.done_sending()


async def _read_up_to(stream: Stream, limit: int) -> tuple[list[bytes], bool]:
    """The body's pieces until its end (True) or until more than `limit` bytes (False)."""
    pieces = []
    size = 0
    while size <= limit:
        data = await stream.receive()
        if not data:
            return pieces, True
        pieces.append(data)
        size += len(data)
    return pieces, False


async def _to_client(stream: Stream, spool: Spool) -> None:
    """Give the client the response from `spool`, at the pace it reads."""
    try:
        while True:
            data = await spool.get()
            if data is None or stream.client_closed:
                return
            await stream.send(data)
    finally:
        spool.close()


def _upgrade_allowed(request: Request, allowed: frozenset[str]) -> bool:
    """Every protocol the client's `Upgrade` names is in the rule's `upgrade` option."""
    offered = (request.header(b"upgrade") or b"").decode("latin-1").lower().split(",")
    tokens = [token.strip() for token in offered if token.strip()]
    return bool(tokens) and all(token in allowed for token in tokens)


def _answer(stream: Stream, status: int, text: bytes) -> None:
    """Answer with a short text, or break the connection if a response was already begun."""
    if stream.started:
        stream.abort()
    else:
        stream.start(status, _TEXT, length=len(text))
        stream.write(text)


def _connect_error(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no connection within {timeout:g}s (connect_timeout)"
    return exc.strerror or str(exc) or type(exc).__name__
