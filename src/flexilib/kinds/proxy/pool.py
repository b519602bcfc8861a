"""Keep-alive connections to one upstream, reused across requests, with a cap.

Idle connections are reused most-recent first (the one least likely to have
been closed by the upstream's own idle timer) and closed after
`idle_timeout`. At most `max_connections` are open at once, idle or busy;
a request that finds them all busy waits up to `connect_timeout` for one.
"""

from __future__ import annotations

import asyncio
from collections import deque

from flexilib.kinds.proxy.connection import UpstreamConnection
from flexilib.kinds.proxy.options import ProxyOptions
from flexilib.kinds.proxy.upstream import Upstream

__all__ = ["ConnectionPool", "PoolExhausted"]


class PoolExhausted(Exception):
    """Every allowed connection stayed busy for `connect_timeout`."""


class ConnectionPool:
    """The connections of one worker to one upstream."""

    def __init__(
        self, upstream: Upstream, options: ProxyOptions, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.upstream = upstream
        self.options = options
        self.loop = loop
        self.idle: list[UpstreamConnection] = []  # oldest first
        self.connections: set[UpstreamConnection] = set()
        self._connecting = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    async def acquire(self, fresh: bool = False) -> UpstreamConnection:
        """A connection ready for a request: an idle one unless `fresh`, else a new one.

        Raises OSError or TimeoutError when connecting fails, PoolExhausted at the cap.
        """
        deadline = self.loop.time() + self.options.connect_timeout
        while True:
            if self.idle and not fresh:
                connection = self.idle.pop()
                connection.reused = True
                return connection
            if len(self.connections) + self._connecting < self.options.max_connections:
                return await self._connect()
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise PoolExhausted(f"all {self.options.max_connections} connections stayed busy")
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            timer = self.loop.call_later(remaining, _set, waiter)
            try:
                await waiter
            finally:
                timer.cancel()

    async def _connect(self) -> UpstreamConnection:
        upstream = self.upstream
        self._connecting += 1
        try:
            _, connection = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: UpstreamConnection(
                        self.loop, self.options.read_timeout, self.opened, self.discard
                    ),
                    upstream.host,
                    upstream.port,
                    ssl=upstream.ssl,
                    server_hostname=upstream.host if upstream.ssl else None,
                ),
                self.options.connect_timeout,
            )
        finally:
            self._connecting -= 1
            self._wake_one()
        return connection

    def release(self, connection: UpstreamConnection) -> None:
        """A request is done with `connection`: keep it for the next one, or close it."""
        connection.finished()
        if connection.reusable() and not self._closed:
            connection.idle_since = self.loop.time()
            self.idle.append(connection)
            if self._sweep is None:
                self._sweep = self.loop.call_later(self.options.idle_timeout, self._expire)
            self._wake_one()
        elif connection.complete:
            connection.close()
        else:
            connection.abort()  # mid-response: what is still on its way is not wanted

    def opened(self, connection: UpstreamConnection) -> None:
        self.connections.add(connection)

    def discard(self, connection: UpstreamConnection) -> None:
        """`connection` is closed: forget it, and let a waiting request open another."""
        self.connections.discard(connection)
        if connection in self.idle:
            self.idle.remove(connection)
        self._wake_one()

    def close(self) -> None:
        """The handler is retired: close idle connections now, busy ones when released."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for connection in list(self.idle):
            connection.close()

    def _expire(self) -> None:
        """Close connections idle for `idle_timeout`; come back for the next oldest."""
        self._sweep = None
        idle_timeout = self.options.idle_timeout
        limit = self.loop.time() - idle_timeout
        while self.idle and self.idle[0].idle_since <= limit:
            self.idle.pop(0).close()
        if self.idle:
            self._sweep = self.loop.call_at(self.idle[0].idle_since + idle_timeout, self._expire)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _set(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)
