"""One worker process: an event loop serving the listening socket it shares with its siblings.

It owns the routing table (swapped whole when the master sends new rules),
the handler slots (kept across a config change when their spec is
unchanged), the dispatcher's threads, the file watcher and the one-second
tick that times out connections, refreshes the `Date` header and stamps the
scoreboard (the master replaces a worker whose stamp goes stale).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket

from flexilib.config import HandlerSpec, Rule
from flexilib.http.connections import Connections
from flexilib.http.protocol import HttpProtocol
from flexilib.kinds.native import handler as native
from flexilib.log import diag
from flexilib.runtime.dispatch import Dispatcher
from flexilib.runtime.slot import HandlerSlot
from flexilib.runtime.watch import Watcher
from flexilib.server.accesslog import AccessLog
from flexilib.server.app import App
from flexilib.server.control import Decoder
from flexilib.server.routing import Route, Router
from flexilib.server.scoreboard import CELLS, Scoreboard
from flexilib.settings import Settings

__all__ = ["Worker", "run_worker"]


class Worker:
    """State shared by every connection of this worker process."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        settings: Settings,
        rules: list[Rule],
        number: int = 0,
        scoreboard: Scoreboard | None = None,
    ) -> None:
        self.loop = loop
        self.settings = settings
        self.number = number
        self.scoreboard = scoreboard
        self.connections = Connections(settings.limits, loop.time)
        self.dispatcher = Dispatcher(loop, settings.threads, settings.max_threads)
        self.log = AccessLog(loop)
        self.app = App(loop, self.dispatcher, self.log)
        self.slots: dict[HandlerSpec, HandlerSlot] = {}
        self.retired: set[HandlerSlot] = set()  # left the config: closed at exit if still draining
        self.watcher = Watcher(loop)
        self._listener: asyncio.AbstractServer | None = None
        self._stopped: asyncio.Future | None = None
        self._decoder = Decoder()
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
        self.app.router = Router(routes)

    def _control(self, fd: int) -> None:
        """Messages from the master: the validated rules of a new config, quarantines."""
        try:
            data = os.read(fd, 1 << 20)
        except BlockingIOError:
            return
        if not data:  # the master is gone: nothing will supervise us any more
            self.loop.remove_reader(fd)
            diag("the master went away: stopping")
            self.stop()
            return
        for kind, payload in self._decoder.feed(data):
            if kind == "quarantine":
                spec, until = payload
                slot = self.slots.get(spec)
                if slot is not None:
                    slot.blocked_until = until
            elif kind == "rules":
                kept = sum(1 for rule in payload if rule.spec in self.slots)
                self.apply(payload)
                diag(
                    f"SIGHUP: {self.settings.config} reloaded: {len(payload)} routes,"
                    f" {kept} loaded handler(s) kept"
                )

    # -- the clock -----------------------------------------------------------------
    def tick(self) -> None:
        """Once a second: timeouts and `Date`, the scoreboard, and the end of a graceful stop."""
        self.connections.tick()
        if self.scoreboard is not None:
            self.scoreboard.beat(self.number)
        stopped = self._stopped
        if self.connections.stopping and not self.connections.open and stopped is not None:
            if not stopped.done():
                stopped.set_result(None)
        self.loop.call_at(self.connections.now + 1.0, self.tick)

    # -- lifecycle -----------------------------------------------------------------
    async def serve(self, sock: socket.socket, control: int | None = None) -> None:
        loop = self.loop
        self._stopped = loop.create_future()
        self._listener = await loop.create_server(
            lambda: HttpProtocol(self.app, self.connections, loop), sock=sock, backlog=2048
        )
        if control is not None:
            os.set_blocking(control, False)
            loop.add_reader(control, self._control, control)
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        # the master kept SIGTERM blocked since fork: one sent during start-up is handled now.
        # SIGHUP and SIGINT stay ignored: the master reloads (and sends the rules) and
        # forwards a Ctrl-C as SIGTERM.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        self.watcher.start()
        self.tick()
        diag(f"worker {os.getpid()} serving {len(self.app.router.routes)} routes")
        await self._stopped
        self.log.flush()

    def stop(self) -> None:
        """First signal: stop accepting, finish what is in flight; second: stop at once."""
        if self.connections.stopping:
            diag("second stop signal: exiting now")
            self.log.flush()
            os._exit(1)
        grace = self.settings.grace_period
        diag(
            f"worker {os.getpid()} stopping: {len(self.connections.open)} connection(s) open,"
            f" up to {grace:g}s to finish"
        )
        if self._listener is not None:
            self._listener.close()
        self.connections.stop()
        self.loop.call_later(grace, self._grace_over)
        if not self.connections.open:
            self._stopped.set_result(None)

    def _grace_over(self) -> None:
        if not self._stopped.done():
            diag(f"grace period over: closing {len(self.connections.open)} connection(s)")
            self.connections.abort_all()
            self._stopped.set_result(None)

    def close(self) -> None:
        """The worker exits: close every handler version (stopping runtimes, pools)."""
        self.watcher.stop()
        for slot in [*self.slots.values(), *self.retired]:
            slot.shutdown()
        self.dispatcher.close()
        native.remove_private_copies()


def run_worker(
    sock: socket.socket,
    settings: Settings,
    rules: list[Rule],
    number: int = 0,
    scoreboard: Scoreboard | None = None,
    control: int | None = None,
    blocked: dict[HandlerSpec, float] | None = None,
) -> int:
    """A worker's whole life; returns its exit status.

    `blocked`: handlers the master has quarantined, and until when (monotonic).
    """
    import uvloop

    native.set_preallocation(settings.prealloc_kb)
    if scoreboard is not None:
        native.set_crash_board(scoreboard.cells_address(number), CELLS)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = Worker(loop, settings, rules, number, scoreboard)
    for spec, until in (blocked or {}).items():
        if spec in worker.slots:
            worker.slots[spec].blocked_until = until
    try:
        loop.run_until_complete(worker.serve(sock, control))
    finally:
        worker.close()
        worker.log.flush()
    return 0
