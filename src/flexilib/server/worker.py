"""One worker process: an event loop serving the listening socket it shares with its siblings.

It owns the routing table (swapped whole when the master sends new rules),
the handler slots (kept across a config change when their spec is
unchanged), the dispatcher's threads, the file watcher and the one-second
tick that times out connections, refreshes the `Date` header and stamps the
scoreboard (the master replaces a worker whose stamp goes stale).

The tick also reports to the master over the worker's report pipe
(`server/control.py` frames, worker -> master): what each route served
since the last tick (`flexilib.stats`), handler loads, upstream attempts,
open connections, requests in flight and this process's memory, CPU and
descriptors. The master adds the deltas to totals that outlive the worker
and serves them on its admin port. A worker answers the master's
`("generation", n)` with `("serving", n)` once its listener is up and the
rules sent before it are applied: that is what readiness counts.
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
from flexilib.server.control import Decoder, encode
from flexilib.server.routing import Route, Router
from flexilib.server.scoreboard import CELLS, Scoreboard
from flexilib.settings import Settings
from flexilib.stats import UPSTREAMS, RouteStats, process_sample

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
        reports: int | None = None,
    ) -> None:
        self.loop = loop
        self.settings = settings
        self.number = number
        self.scoreboard = scoreboard
        self.connections = Connections(settings.limits, loop.time)
        self.dispatcher = Dispatcher(loop, settings.threads, settings.max_threads)
        self.log = AccessLog(loop, json_format=settings.log_format == "json", worker=number)
        self.app = App(loop, self.dispatcher, self.log)
        self.app.counting = reports is not None
        self.stats: dict[tuple[str, str], RouteStats] = {}  # by (rule key, kind), across reloads
        self.reports = reports  # the write end of the report pipe to the master
        self._outbox = b""  # report bytes the pipe could not take yet
        self._loads_sent: dict[HandlerSlot, tuple[int, int]] = {}
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
            name = (rule.key, rule.spec.kind)
            stats = self.stats.get(name) or self.stats.setdefault(name, RouteStats(*name))
            routes.append(Route(rule, slot, stats))
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
            elif kind == "generation":  # the rules sent before it are applied
                self.send(("serving", payload))

    # -- reports to the master ---------------------------------------------------
    def send(self, message: object) -> None:
        """Queue a message to the master and write what the pipe takes (never blocks)."""
        if self.reports is None:
            return
        self._outbox += encode(message)
        self.flush_reports()

    def flush_reports(self) -> None:
        """Write what the report pipe takes of what is queued."""
        if not self._outbox:
            return
        try:
            written = os.write(self.reports, self._outbox)
        except BlockingIOError:
            written = 0
        except OSError:  # the master is gone: the control pipe's EOF stops us
            written = len(self._outbox)
        self._outbox = self._outbox[written:]

    def report(self) -> None:
        """What this worker did since the last report (see the module docstring)."""
        if self.reports is None:
            return
        routes = [d for s in [*self.stats.values(), self.app.unrouted] if (d := s.take())]
        sent, self._loads_sent = self._loads_sent, {}  # only the slots in use stay listed
        handlers = []  # (key, kind, target, version, loaded at, loads ok, failed, busy)
        for route in self.app.router.routes:
            slot = route.slot
            ok, failed = slot.loads
            if slot in self._loads_sent:  # loads count once, for the first route naming the slot
                sent_ok, sent_failed = ok, failed
            else:
                sent_ok, sent_failed = sent.get(slot, (0, 0))
            self._loads_sent[slot] = (ok, failed)
            handlers.append(
                (
                    route.key,
                    route.spec.kind,
                    route.spec.target,
                    slot.version,
                    slot.loaded_at,
                    ok - sent_ok,
                    failed - sent_failed,
                    slot.busy,
                )
            )
        upstreams = dict(UPSTREAMS)
        UPSTREAMS.clear()
        self.send(
            (
                "stats",
                {
                    "routes": routes,
                    "handlers": handlers,
                    "upstreams": upstreams,
                    "connections": len(self.connections.open),
                    "process": process_sample(),
                },
            )
        )

    # -- the clock -----------------------------------------------------------------
    def tick(self) -> None:
        """Once a second: timeouts and `Date`, the scoreboard, and the end of a graceful stop."""
        self.connections.tick()
        if self.scoreboard is not None:
            self.scoreboard.beat(self.number)
        self.report()
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
        self.report()

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
    reports: int | None = None,
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
    if reports is not None:
        os.set_blocking(reports, False)
    worker = Worker(loop, settings, rules, number, scoreboard, reports)
    for spec, until in (blocked or {}).items():
        if spec in worker.slots:
            worker.slots[spec].blocked_until = until
    try:
        loop.run_until_complete(worker.serve(sock, control))
    finally:
        worker.close()
        worker.log.flush()
        if reports is not None:  # the last counts: the master reads them before it reaps us
            os.set_blocking(reports, True)
            worker.flush_reports()
    return 0
