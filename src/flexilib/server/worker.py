"""One worker process: an event loop serving the shared listening socket.

It owns the routing table (swapped whole on SIGHUP), the handler slots
(kept across a SIGHUP when their spec is unchanged), the dispatcher's
threads, the file watcher and the one-second tick that refreshes the `Date`
header and closes connections past their deadlines.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from email.utils import formatdate

from flexilib.config import ConfigError, HandlerSpec, Rule, load_config
from flexilib.http.protocol import HttpProtocol
from flexilib.kinds.native import handler as native
from flexilib.log import AccessLog, diag
from flexilib.runtime.dispatch import Dispatcher
from flexilib.runtime.handler import validate_rules
from flexilib.runtime.slot import HandlerSlot
from flexilib.runtime.watch import Watcher
from flexilib.server.routing import Route, Router
from flexilib.settings import Settings

__all__ = ["Server", "run_worker"]

SERVER_NAME = b"flexilib"


class Server:
    """State shared by every connection of this worker."""

    def __init__(self, loop: asyncio.AbstractEventLoop, settings: Settings, rules: list[Rule]):
        self.loop = loop
        self.settings = settings
        self.limits = settings.limits
        self.dispatcher = Dispatcher(loop, settings.threads, settings.max_threads)
        self.log = AccessLog(loop)
        self.connections: set[HttpProtocol] = set()
        self.stopping = False
        self.now = loop.time()
        self.common_headers = b""
        self.slots: dict[HandlerSpec, HandlerSlot] = {}
        self.retired: set[HandlerSlot] = set()  # left the config: closed at exit if still draining
        self.watcher = Watcher(loop)
        self.router = Router([])
        self._listener: asyncio.AbstractServer | None = None
        self._stopped: asyncio.Future | None = None
        self._stamp()
        self.apply(rules)

    # -- routing table -----------------------------------------------------------
    def apply(self, rules: list[Rule]) -> None:
        """Swap in a new table; keep slots whose spec is unchanged, retire the rest."""
        slots: dict[HandlerSpec, HandlerSlot] = {}
        routes = []
        for rule in rules:
            slot = slots.get(rule.spec) or self.slots.get(rule.spec)
            if slot is None:
                slot = HandlerSlot(rule.spec, self.dispatcher, self.watcher.track)
            slots[rule.spec] = slot
            routes.append(Route(rule, slot))
        for spec, slot in self.slots.items():
            if spec not in slots:
                self.watcher.forget(slot)
                slot.retire()
                self.retired.add(slot)
        self.slots = slots
        self.router = Router(routes)

    def reload_config(self) -> None:
        path = self.settings.config
        try:
            rules = validate_rules(load_config(path), path)
        except ConfigError as exc:
            diag(f"SIGHUP: config rejected, old routes keep serving: {exc}")
            return
        kept = sum(1 for rule in rules if rule.spec in self.slots)
        self.apply(rules)
        diag(f"SIGHUP: {path} reloaded: {len(rules)} routes, {kept} loaded handler(s) kept")

    # -- the clock -----------------------------------------------------------------
    def _stamp(self) -> None:
        date = formatdate(time.time(), usegmt=True).encode()
        self.common_headers = b"Server: %s\r\nDate: %s\r\n" % (SERVER_NAME, date)

    def tick(self) -> None:
        """Once a second: the Date header, and connections past their deadline."""
        self.now = now = self.loop.time()
        self._stamp()
        for connection in [c for c in self.connections if 0 < c.deadline < now]:
            connection.timed_out()
        if self.stopping and not self.connections and self._stopped and not self._stopped.done():
            self._stopped.set_result(None)
        self.loop.call_at(now + 1.0, self.tick)

    # -- lifecycle -----------------------------------------------------------------
    async def serve(self, sock: socket.socket) -> None:
        loop = self.loop
        self._stopped = loop.create_future()
        self._listener = await loop.create_server(
            lambda: HttpProtocol(self), sock=sock, backlog=2048
        )
        loop.add_signal_handler(signal.SIGHUP, self.reload_config)
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        # the master kept these blocked since fork: one sent during start-up is handled now
        # (SIGINT stays ignored: Ctrl-C reaches the master, which forwards SIGTERM)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP, signal.SIGTERM})
        self.watcher.start()
        self.tick()
        diag(f"worker {os.getpid()} serving {len(self.router.routes)} routes")
        await self._stopped
        self.log.flush()

    def stop(self) -> None:
        """First signal: stop accepting, finish what is in flight; second: stop at once."""
        if self.stopping:
            diag("second stop signal: exiting now")
            self.log.flush()
            os._exit(1)
        self.stopping = True
        grace = self.settings.grace_period
        diag(
            f"worker {os.getpid()} stopping: {len(self.connections)} connection(s) open,"
            f" up to {grace:g}s to finish"
        )
        if self._listener is not None:
            self._listener.close()
        for connection in list(self.connections):
            connection.close_idle()
        self.loop.call_later(grace, self._grace_over)
        if not self.connections:
            self._stopped.set_result(None)

    def _grace_over(self) -> None:
        if not self._stopped.done():
            diag(f"grace period over: closing {len(self.connections)} connection(s)")
            for connection in list(self.connections):
                connection.close_now()
            self._stopped.set_result(None)

    def close(self) -> None:
        """The worker exits: close every handler version (stopping runtimes, pools)."""
        self.watcher.stop()
        for slot in [*self.slots.values(), *self.retired]:
            slot.shutdown()
        self.dispatcher.close()
        native.remove_private_copies()


def run_worker(sock: socket.socket, settings: Settings, rules: list[Rule]) -> int:
    """A worker's whole life; returns its exit status."""
    import uvloop

    native.set_preallocation(settings.prealloc_kb)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    server = Server(loop, settings, rules)
    try:
        loop.run_until_complete(server.serve(sock))
    finally:
        server.close()
        server.log.flush()
    return 0
