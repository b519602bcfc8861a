"""The application the HTTP protocol hands requests to: route, run the handler, answer, log.

With `http/protocol.py` (bytes in, bytes out) and `runtime/dispatch.py`
(inline or on a thread) this is the hot path. Per request:

1. `head()`: the header section is in. The routing table picks the rule
   (first match); a streaming kind (reverse proxy) reads the body as it
   arrives, every other kind gets it whole.
2. `start()`: the request's turn on its connection came. Its handler's slot
   gives the version to run (or loads it, on first use or after a reload),
   and the handler runs by its mode: `sync` through the dispatcher,
   `async` as a task on the loop, `stream` as a task with the exchange.
3. The result goes to `Exchange.respond()`; a handler failure or a response
   that breaks `http.headers`' rules is logged and answered 500 (or the
   status the failure carries).
4. `finished()`: the route's counters (`flexilib.stats`: a count by status
   and a histogram bucket, ~0.3 µs), one access-log line, and the handler
   version is released to its slot (which may be waiting to swap it).
"""

from __future__ import annotations

import asyncio
import time
import traceback
from functools import partial
from time import perf_counter

from flexilib.http.exchange import Exchange
from flexilib.http.headers import InvalidResponse
from flexilib.log import diag
from flexilib.response import Response, unavailable
from flexilib.runtime.dispatch import Dispatcher
from flexilib.runtime.handler import Handler, HandlerError
from flexilib.server.accesslog import AccessLog
from flexilib.server.routing import Router
from flexilib.stats import RouteStats

__all__ = ["App"]

_ERROR_TEXT = {500: b"Internal Server Error\n", 503: b"Handler not available\n"}
_NO_ROUTE = b"No route for this request\n"
_QUARANTINED = b"Service Unavailable: this handler crashed its worker and is quarantined\n"


class App:
    """One per worker; `router` is swapped whole when the config changes."""

    __slots__ = ("router", "dispatcher", "loop", "log", "unrouted", "counting")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, dispatcher: Dispatcher, log: AccessLog
    ) -> None:
        self.router = Router([])
        self.dispatcher = dispatcher
        self.loop = loop
        self.log = log
        self.unrouted = RouteStats("-", "-")  # answered without a route: 404s, protocol errors
        self.counting = True  # off with `--admin off`: nobody would read the counts

    # -- http.protocol.Application ----------------------------------------------
    def head(self, exchange: Exchange) -> bool:
        route = self.router.match(exchange.request)
        exchange.route = route
        if route is None:
            return False
        exchange.request.route_prefix = route.path_prefix
        return route.slot.streaming

    def start(self, exchange: Exchange) -> None:
        route = exchange.route
        if route is None:
            diag(f"{exchange.client}: no route for {exchange.request.target}")
            exchange.respond(Response(_NO_ROUTE, 404))
            return
        slot = route.slot
        if slot.blocked_until and self._blocked(exchange, slot.blocked_until):
            return
        handler = slot.acquire()
        if handler is None:
            slot.wait(partial(self._ready, exchange))
            return
        exchange.handler = handler
        if handler.mode == "sync":  # the common case, without one more call
            self.dispatcher.run(handler, exchange.request, self._deliver, exchange)
        else:
            self._run(exchange, handler)

    def finished(self, exchange: Exchange) -> None:
        end = perf_counter()
        request = exchange.request
        start = exchange.started_at
        ttlb = end - start
        route = exchange.route
        stats = self.unrouted if route is None else route.stats
        if self.counting:
            stats.record(exchange.status, ttlb)
        self.log.log(
            exchange.client,
            request.raw_method,
            request.raw_target,
            request.http_version,
            exchange.status,
            (exchange.ttfb or end) - start,
            exchange.sent,
            ttlb,
            exchange.prealloc,
            exchange.alloc,
            stats.key,
            stats.kind,
        )
        handler = exchange.handler
        if handler is not None:
            exchange.handler = None
            route.slot.release(handler)

    def _blocked(self, exchange: Exchange, until: float) -> bool:
        """A quarantined handler (a worker crashed inside it): 503 until `until`."""
        left = until - time.monotonic()
        if left <= 0:
            exchange.route.slot.blocked_until = 0.0
            return False
        exchange.respond(unavailable(_QUARANTINED, left))
        return True

    # -- running the handler ----------------------------------------------------------
    def _ready(self, exchange: Exchange, handler: Handler | None, error: BaseException | None):
        """The slot has a version for a request that waited (or failed to load one)."""
        if error is not None:
            response = getattr(error, "response", None)
            if response is None:
                status = error.status if isinstance(error, HandlerError) else 503
                response = Response(_ERROR_TEXT.get(status, b""), status)
            exchange.respond(response)
            return
        exchange.handler = handler
        self._run(exchange, handler)

    def _run(self, exchange: Exchange, handler: Handler) -> None:
        mode = handler.mode
        if mode == "sync":
            self.dispatcher.run(handler, exchange.request, self._deliver, exchange)
        elif mode == "async":
            self.loop.create_task(self._run_async(exchange, handler))
        else:
            self.loop.create_task(self._run_stream(exchange, handler))

    async def _run_async(self, exchange: Exchange, handler: Handler) -> None:
        timer = None
        if handler.timeout:  # cancelled at its next await once the deadline passes
            timer = self.loop.call_later(handler.timeout, asyncio.current_task().cancel)
        try:
            result = await handler.call_async(exchange.request)
        except BaseException as exc:  # noqa: BLE001 - every failure is answered and logged
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if isinstance(exc, asyncio.CancelledError) and timer is not None:
                exc = handler.on_timeout(exchange.request)
            self._deliver(exchange, None, exc)
            return
        finally:
            if timer is not None:
                timer.cancel()
        self._deliver(exchange, result, None)

    async def _run_stream(self, exchange: Exchange, handler: Handler) -> None:
        try:
            await handler.stream(exchange.request, exchange)
        except Exception as exc:  # noqa: BLE001
            self._failed(exchange, exc)
            if not exchange.started:
                exchange.start(500, [(b"Content-Type", b"text/plain")], length=22)
                exchange.write(b"Internal Server Error\n")
            else:
                exchange.abort()
        exchange.finish()

    def _deliver(
        self, exchange: Exchange, response: Response | None, error: BaseException | None
    ) -> None:
        """A handler's result (or failure), on the loop thread: answer it."""
        if error is not None:
            status = self._failed(exchange, error)
            response = getattr(error, "response", None) or Response(
                _ERROR_TEXT.get(status, b""), status
            )
        try:
            exchange.respond(response)
        except Exception as exc:  # noqa: BLE001 - a response that breaks the rules is the handler's failure
            self._failed(exchange, exc)
            exchange.respond(Response(_ERROR_TEXT[500], 500))

    def _failed(self, exchange: Exchange, exc: BaseException) -> int:
        """Log a handler's failure once; the status to answer."""
        request = exchange.request
        where = f"{exchange.client}: {request.method} {request.target}"
        if isinstance(exc, HandlerError):
            diag(f"{where}: {exc}")  # a failure the handler kind described
            return exc.status
        if isinstance(exc, InvalidResponse):
            diag(f"{where}: {exchange.route.spec.target}: bad response: {exc}")
            return 500
        target = exchange.route.spec.target if exchange.route is not None else "-"
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
        diag(f"{where}: {target} raised:\n{text}")
        return 500
