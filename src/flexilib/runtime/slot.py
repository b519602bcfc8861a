"""One TARGET's live version: loaded on first use, counted while in use, drained and swapped.

Every request for a handler goes through its slot on the event-loop thread,
so the counting needs no locks. Loading runs on the thread pool, never on
the loop. A reload loads the new version beside the old one; only once it
has loaded do new requests wait, while the old version's requests in flight
finish. Then the new version takes them, and the old one is closed. A new
version that fails to load leaves the old one serving.

The wait is bounded by `DRAIN_WAIT`: a long request (a slow upload, a long
poll) must not hold every new request back. Past it the new version takes
new requests while the old one finishes its own, and the old one is closed
after its last. So each request is released with the version it ran on.

A slot whose rule left the config (SIGHUP) is retired: it closes once idle,
but still answers a request that was routed to it before the swap and only
starts now (its body was still arriving, or it was pipelined).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flexilib.config import HandlerSpec
from flexilib.log import diag
from flexilib.runtime.handler import Handler, HandlerLoadError, create_handler, handler_class

__all__ = ["DRAIN_WAIT", "HandlerSlot", "file_stamp"]

DRAIN_WAIT = 1.0  # seconds new requests wait for the old version's requests to finish

Waiter = Callable[[Handler | None, BaseException | None], None]
Stamp = tuple[int, int, int, int] | None


def file_stamp(path: str | Path) -> Stamp:
    """What identifies one state of a file (None: missing); a rebuild always changes it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class HandlerSlot:
    """The live version of one handler spec, shared by every rule that names it."""

    def __init__(self, spec: HandlerSpec, dispatcher: Any, on_loaded: Callable | None = None):
        self.spec = spec
        self.streaming = handler_class(spec.kind).mode == "stream"
        self._dispatcher = dispatcher
        # told about every loaded version and the stamp of its file before loading (watching)
        self._on_loaded = on_loaded
        self.current: Handler | None = None
        self.inflight = 0  # requests running on `current`
        self._pending: Handler | None = None  # loaded, waiting for the old version to drain
        self._draining: dict[Handler, int] = {}  # older versions past DRAIN_WAIT: requests left
        self._timer: asyncio.TimerHandle | None = None
        self._loading = False
        self._reload_again = False
        self._waiters: deque[Waiter] = deque()
        self._retired = False
        self.version = 0
        #: `time.monotonic()` until which requests get 503 without a call: the master
        #: quarantined this handler after a worker died inside it (0: not quarantined)
        self.blocked_until = 0.0
        self.loads = [0, 0]  # versions loaded, loads failed (the admin port reports them)
        self.loaded_at = 0.0  # wall-clock time `version` was loaded

    # -- the hot path ----------------------------------------------------------
    def acquire(self) -> Handler | None:
        """The handler to use now, or None: then call `wait()`."""
        if self._pending is None and self.current is not None:
            self.inflight += 1
            return self.current
        return None

    def release(self, handler: Handler) -> None:
        """A request that ran on `handler` (what acquire() or the waiter got) is done."""
        if handler is self.current:
            self.inflight -= 1
            if self.inflight == 0:
                if self._pending is not None:
                    self._swap()
                elif self._retired:
                    self._close_if_idle()
            return
        left = self._draining[handler] - 1
        if left:
            self._draining[handler] = left
        else:
            del self._draining[handler]
            handler.close()
            diag(f"closed an old version of {self.spec.target}: its last request finished")

    @property
    def busy(self) -> int:
        """Requests running on any version of this handler or waiting for one."""
        return self.inflight + sum(self._draining.values()) + len(self._waiters)

    # -- the slow path ---------------------------------------------------------
    def wait(self, waiter: Waiter) -> None:
        """Call `waiter(handler, None)` once a version is ready, or `(None, error)`."""
        self._waiters.append(waiter)
        if self.current is None and not self._loading:
            self._load()

    def reload(self, reason: str) -> None:
        """Load the file again (it changed); swap once the old version has drained."""
        if self._retired or self.current is None:
            return  # never loaded: the next request loads the new file anyway
        if self._loading:
            self._reload_again = True
            return
        diag(f"reloading {self.spec.target}: {reason}")
        self._load()

    def retire(self) -> None:
        """The config no longer names this handler: close it once nothing runs on it."""
        self._retired = True
        if self.inflight == 0 and self._pending is not None:
            self._swap()
        self._close_if_idle()

    def _load(self) -> None:
        self._loading = True
        handler = create_handler(self.spec)
        stamp = file_stamp(self.spec.path)  # before loading: a change while loading is seen
        self._dispatcher.submit(_load, handler, self._loaded, (handler, stamp))

    def _loaded(self, loading: tuple[Handler, Stamp], _: None, error: BaseException | None) -> None:
        handler, stamp = loading
        self._loading = False
        if error is not None:
            cause = error if isinstance(error, HandlerLoadError) else HandlerLoadError(repr(error))
            self.loads[1] += 1
            if self.current is None:
                diag(f"load failed: {cause}")
                waiters, self._waiters = self._waiters, deque()
                for waiter in waiters:
                    waiter(None, cause)
            else:
                diag(f"reload failed, version {self.version} keeps serving: {cause}")
            if self._retired:
                self._close_if_idle()  # retire() left the idle version to this load
            self._again()
            return
        if self._retired and not self._waiters:
            handler.close()  # nothing routed here is waiting for it any more
            self._close_if_idle()  # nor for the version it was to replace
            return
        self.version += 1
        self.loads[0] += 1
        self.loaded_at = time.time()
        if self._on_loaded is not None and not self._retired:
            self._on_loaded(self, handler, stamp)
        if self.current is None:
            diag(f"loaded {self.spec.target} (version {self.version})")
            self.current = handler
            self._serve_waiters()
        else:
            if self._pending is not None:  # superseded before it ever served
                self._pending.close()
            self._pending = handler
            if self.inflight == 0:
                self._swap()
            else:
                diag(f"draining {self.spec.target}: {self.inflight} request(s) in flight")
                if self._timer is None:
                    loop = asyncio.get_running_loop()
                    self._timer = loop.call_later(DRAIN_WAIT, self._drain_overdue)
        self._again()

    def _again(self) -> None:
        if self._reload_again:
            self._reload_again = False
            self.reload("changed again while loading")

    def _drain_overdue(self) -> None:
        """DRAIN_WAIT passed: the new version takes new requests, the old finishes its own."""
        self._timer = None
        if self._pending is None:
            return
        diag(
            f"{self.spec.target}: {self.inflight} request(s) still running after {DRAIN_WAIT:g}s;"
            f" version {self.version} takes new requests, the old one closes after them"
        )
        self._draining[self.current] = self.inflight
        self.current, self._pending, self.inflight = self._pending, None, 0
        self._serve_waiters()
        if self._retired:
            self._close_if_idle()

    def _swap(self) -> None:
        """The current version has no request left: the pending one takes over."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        old, self.current, self._pending = self.current, self._pending, None
        diag(f"swapped {self.spec.target} to version {self.version}")
        if old is not None:
            old.close()
        self._serve_waiters()

    def _close_if_idle(self) -> None:
        """Retired: close what is loaded once no request runs on it or waits for it."""
        if self.inflight or self._waiters or self._loading:
            return
        for handler in (self.current, self._pending):
            if handler is not None:
                handler.close()
        self.current = self._pending = None

    def shutdown(self) -> None:
        """The worker is exiting: close every version now, whatever still runs on it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        versions = [self.current, self._pending, *self._draining]
        self.current = self._pending = None
        self._draining.clear()
        self._retired = True
        for handler in versions:
            if handler is not None:
                handler.close()

    def _serve_waiters(self) -> None:
        # one at a time, each still listed while the ones before it run: a request that
        # finishes at once must not let a retired slot close under the ones still waiting
        while self._waiters and (handler := self.acquire()) is not None:
            self._waiters.popleft()(handler, None)


def _load(handler: Handler) -> None:
    handler.load()
