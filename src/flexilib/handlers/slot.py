"""One TARGET's live version: loaded on first use, counted while in use, drained and swapped.

Every request for a handler goes through its slot on the event-loop thread,
so the counting needs no locks. Loading runs on the thread pool, never on
the loop. A reload loads the new version beside the old one; only once it
has loaded do new requests wait, while the old version's requests in flight
finish. Then the new version takes them, and the old one is closed. A new
version that fails to load leaves the old one serving.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flexilib.accesslog import diag
from flexilib.handlers import create_handler, handler_class
from flexilib.handlers.base import Handler, HandlerLoadError, HandlerSpec

__all__ = ["HandlerSlot"]

Waiter = Callable[[Handler | None, BaseException | None], None]


class HandlerSlot:
    """The live version of one handler spec, shared by every rule that names it."""

    def __init__(self, spec: HandlerSpec, dispatcher: Any, on_loaded: Callable | None = None):
        self.spec = spec
        self.streaming = handler_class(spec.kind).mode == "stream"
        self._dispatcher = dispatcher
        self._on_loaded = on_loaded  # told about every loaded version (file watching)
        self.current: Handler | None = None
        self.inflight = 0
        self._pending: Handler | None = None  # loaded, waiting for the old version to drain
        self._loading = False
        self._reload_again = False
        self._waiters: list[Waiter] = []
        self._retired = False
        self.version = 0

    # -- the hot path ----------------------------------------------------------
    def acquire(self) -> Handler | None:
        """The handler to use now, or None: then call `wait()`."""
        if self._pending is None and self.current is not None:
            self.inflight += 1
            return self.current
        return None

    def release(self) -> None:
        self.inflight -= 1
        if self.inflight == 0 and (self._pending is not None or self._retired):
            self._swap()

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
        """The config no longer names this handler: close it once it has drained."""
        self._retired = True
        if self.inflight == 0:
            self._swap()

    def _load(self) -> None:
        self._loading = True
        handler = create_handler(self.spec)
        self._dispatcher.submit(_load, handler, lambda _, error: self._loaded(handler, error))

    def _loaded(self, handler: Handler, error: BaseException | None) -> None:
        self._loading = False
        if error is not None:
            cause = error if isinstance(error, HandlerLoadError) else HandlerLoadError(repr(error))
            if self.current is None:
                diag(f"load failed: {cause}")
                waiters, self._waiters = self._waiters, []
                for waiter in waiters:
                    waiter(None, cause)
            else:
                diag(f"reload failed, version {self.version} keeps serving: {cause}")
            self._again()
            return
        if self._retired:
            handler.close()
            return
        self.version += 1
        if self._on_loaded is not None:
            self._on_loaded(self, handler)
        if self.current is None:
            diag(f"loaded {self.spec.target} (version {self.version})")
            self.current = handler
            self._serve_waiters()
        else:
            self._pending = handler
            if self.inflight == 0:
                self._swap()
            else:
                diag(f"draining {self.spec.target}: {self.inflight} request(s) in flight")
        self._again()

    def _again(self) -> None:
        if self._reload_again:
            self._reload_again = False
            self.reload("changed again while loading")

    def _swap(self) -> None:
        old = self.current
        if self._retired:
            self.current, pending, self._pending = None, self._pending, None
            if pending is not None:
                pending.close()
        else:
            self.current, self._pending = self._pending, None
            diag(f"swapped {self.spec.target} to version {self.version}")
        if old is not None:
            old.close()
        self._serve_waiters()

    def _serve_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            handler = self.acquire()
            if handler is None:  # retired meanwhile
                waiter(None, HandlerLoadError(f"{self.spec.target} was removed"))
            else:
                waiter(handler, None)


def _load(handler: Handler) -> None:
    handler.load()
