"""Running `sync` handlers: inline on the event loop while they are fast, on threads when not.

Two facts decide the shape (measured, see README "Architecture"): a native
call made inline costs under 10% of a bare loop's throughput, while handing
every call to a thread costs 5x with `run_in_executor`. Inline alone, though,
lets one slow call stall every connection of the worker, and no call made on
the loop thread can be interrupted.

So a call runs inline only when the request is an *exact repeat* of one
seen fast: its class is a hash of everything the client sent (method,
target with its query, every header name and value, and a body of up to
`MAX_INLINE_BODY` bytes; a larger body never runs inline). A new class runs
on the pool; once `PROMOTE` of its pool calls took under `FAST` seconds it
runs inline; an inline call slower than `SLOW` sends it back to the pool,
needing twice the proof next time. Earlier versions classed requests by
method, path and header *names*: a client could then make a class inline
with eight fast requests and stall the worker with a ninth that differed in
its query or body (3 s, or forever). With the whole request in the class,
nothing a client varies reaches the loop thread untested: what it sends
differently is a new class, and runs on the pool. What remains is a handler
whose time changes for the *same* request (its own state): `SLOW` demotes
the class after one such call, and `--worker-timeout` replaces a worker whose
loop stays stuck.

A call's time is the handler's own when the kind can measure it without the
time spent waiting for the GIL (`Response.elapsed`, native calls); otherwise
the wall time around the call, where a wait for the GIL can make a fast call
look slow. That is why fast samples are counted, not required in a row.

On the pool every handler call has a deadline (`handler.timeout`: the
route's `timeout=`): when it passes, `done` gets the handler's
`on_timeout(request)` error at once (504), the late result is dropped, and the
thread running the call gets an asynchronous `TimeoutError` so Python code
looping there stops (code blocked in C stops when it returns). Each handler
also has a `Gate`: at most `concurrency` of its calls run on the pool at
once and `queue` more wait; past that it answers 503 with `Retry-After`, so
one slow route cannot take every thread from the others.

The pool hands results back in batches: workers append to a deque and the
first one to find no wake-up pending asks the loop for one. One
`call_soon_threadsafe` per batch, not per request, keeps the handoff cheap.
The pool starts with `threads` threads and grows toward `max_threads` while
every thread is busy; the extra threads leave after `IDLE_EXIT` idle seconds.
"""

from __future__ import annotations

import asyncio
import ctypes
import queue
import threading
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any

from flexilib.log import diag
from flexilib.response import unavailable
from flexilib.runtime.handler import HandlerError

__all__ = ["DeadlineExceeded", "Dispatcher", "Gate", "NotInline", "Overloaded"]

FAST = 0.0005  # a call this quick may run inline
SLOW = 0.002  # an inline call slower than this stalls the loop: back to the pool
PROMOTE = 8  # fast pool calls (counted, not in a row) before a class runs inline
PROMOTE_MAX = 1024
MAX_CLASSES = 4096  # per handler; past it the table starts afresh (bounded memory)
MAX_INLINE_BODY = 16 * 1024  # a larger request body is never hashed, and never runs inline
IDLE_EXIT = 30.0
_BUSY = b"Service Unavailable: this route is busy, try again\n"

#: `done(tag, result, error)`, called on the loop thread; `tag` is passed through untouched
#: (the exchange), so the hot path makes no closure per request
Done = Callable[[Any, Any, BaseException | None], None]


class DeadlineExceeded(TimeoutError):
    """Raised inside a call whose deadline passed (never by the handler's own code)."""


class NotInline(Exception):  # noqa: N818 - a request to the dispatcher, not a failure
    """Raised by a call made on the loop thread that cannot run there now (it would have to
    wait, say for a lock a pool call holds): the dispatcher runs it on the pool instead."""


class Overloaded(HandlerError):
    """A handler's calls fill its share of the pool and its queue: the client gets 503."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 503, unavailable(_BUSY, 1))


class Gate:
    """How many calls of one handler may run on the pool at once, and wait beyond them."""

    __slots__ = ("limit", "queue", "running", "waiting")

    def __init__(self, limit: int, queue: int) -> None:
        self.limit = limit
        self.queue = queue
        self.running = 0
        self.waiting: deque = deque()


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)


class RequestClass:
    """What the dispatcher has learnt about one class of requests of one handler."""

    __slots__ = ("inline", "fast", "needed")

    def __init__(self) -> None:
        self.inline = False  # run on the loop thread (else on the pool)
        self.fast = 0  # fast pool calls counted since it last went to the pool
        self.needed = PROMOTE  # fast calls needed to run inline; doubles after each demotion

    def record(self, seconds: float) -> None:
        """A pool call of this class took `seconds`."""
        if seconds < FAST:
            self.fast += 1
            if self.fast >= self.needed:
                self.inline = True

    def demote(self) -> None:
        """An inline call was slow: back to the pool, and twice as much proof next time."""
        self.inline = False
        self.fast = 0
        self.needed = min(self.needed * 2, PROMOTE_MAX)


# Ticket.state
WAITING, RUNNING, EXPIRED = 0, 1, 2


class Ticket:
    """A call under a deadline: who runs it, and whether the deadline has passed."""

    __slots__ = ("state", "thread", "timer", "lock", "done")

    def __init__(self, done: Done) -> None:
        self.state = WAITING  # WAITING (queued, or finished in time), RUNNING, EXPIRED
        self.thread = 0  # ident of the pool thread running it
        self.timer: asyncio.TimerHandle | None = None
        self.lock = threading.Lock()  # the thread cannot leave the call while expire() decides
        self.done = done

    def finish(self, tag: Any, result: Any, error: BaseException | None) -> None:
        """The call's result, on the loop thread: passed on unless the deadline answered."""
        if self.state != EXPIRED:
            self.state = EXPIRED
            self.timer.cancel()
            self.done(tag, result, error)

    def cancel(self) -> None:
        self.state = EXPIRED
        self.timer.cancel()


class Dispatcher:
    """Runs callables inline or on the pool, and learns which is which."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threads: int, max_threads: int) -> None:
        self._loop = loop
        self._core = max(1, threads)
        self._max = max(self._core, max_threads)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._done: deque = deque()
        self._wake_pending = False
        self._threads = 0
        self._outstanding = 0  # submitted, result not yet delivered (loop thread only)
        self._count_lock = threading.Lock()
        self._closed = False

    # -- the hot path ---------------------------------------------------
    def run(self, handler: Any, request: Any, done: Done, tag: Any) -> None:
        """Call `handler.call(request)`; `done(tag, result, error)` runs on the loop thread."""
        policy = handler.dispatch
        if policy == "auto":
            body = request.body
            if len(body) > MAX_INLINE_BODY:
                self._pool(handler, request, done, tag, None)
                return
            classes = handler.classes
            key = hash((request.raw_method, request.raw_target, tuple(request.raw_headers), body))
            learnt = classes.get(key)
            if learnt is None:
                if len(classes) >= MAX_CLASSES:
                    classes.clear()
                learnt = classes[key] = RequestClass()
            if learnt.inline:
                self._inline(handler, request, done, tag, learnt)
            else:
                self._pool(handler, request, done, tag, learnt)
        elif policy == "inline":
            self._inline(handler, request, done, tag, None)
        else:
            self._pool(handler, request, done, tag, None)

    def _inline(
        self, handler: Any, request: Any, done: Done, tag: Any, learnt: RequestClass | None
    ) -> None:
        start = perf_counter()
        try:
            result, error = handler.call(request), None
        except NotInline:
            self._pool(handler, request, done, tag, learnt)
            return
        except BaseException as exc:  # handed to the caller, who logs it
            result, error = None, exc
        took = (result.elapsed if result is not None else 0.0) or perf_counter() - start
        if learnt is not None and took > SLOW:  # failing slowly is slow too
            learnt.demote()
        done(tag, result, error)

    # -- the pool ----------------------------------------------------------
    def submit(self, func: Callable[[Any], Any], arg: Any, done: Done, tag: Any = None) -> None:
        """Run `func(arg)` on the pool; `done(tag, result, error)` later on the loop thread."""
        self._submit(func, arg, done, tag, None, None, None)

    def _submit(
        self,
        func: Callable,
        arg: Any,
        done: Done,
        tag: Any,
        learnt: RequestClass | None,
        ticket: Ticket | None,
        gate: Gate | None,
    ) -> None:
        if self._closed:
            done(tag, None, RuntimeError("server is stopping"))
            return
        self._outstanding += 1
        if self._outstanding > self._threads and self._threads < self._max:
            self._start_thread()
        self._jobs.put((func, arg, done, tag, learnt, ticket, gate))

    def _pool(
        self, handler: Any, request: Any, done: Done, tag: Any, learnt: RequestClass | None
    ) -> None:
        """A handler call on the pool: through its gate, under its deadline."""
        gate = handler.gate
        if gate is None:
            gate = handler.gate = Gate(
                handler.concurrency or max(1, self._max // 2), handler.queue_limit
            )
        ticket = self._deadline(handler, request, done, tag) if handler.timeout else None
        call = (handler.call, request, done if ticket is None else ticket.finish, tag, learnt)
        if gate.running < gate.limit:
            gate.running += 1
            self._submit(*call, ticket, gate)
        elif len(gate.waiting) < gate.queue:
            gate.waiting.append((call, ticket))
        else:
            if ticket is not None:
                ticket.cancel()
            done(
                tag,
                None,
                Overloaded(
                    f"{gate.running} calls running and {len(gate.waiting)} waiting"
                    f" (concurrency={gate.limit}, queue={gate.queue}): answered 503"
                ),
            )

    def _deadline(self, handler: Any, request: Any, done: Done, tag: Any) -> Ticket:
        """A ticket whose timer answers `on_timeout(request)` and interrupts the call at the deadline."""
        ticket = Ticket(done)

        def expire() -> None:
            with ticket.lock:  # the worker cannot leave the call while we decide
                if ticket.state == EXPIRED:
                    return
                if ticket.state == RUNNING:
                    _set_async_exc(ticket.thread, DeadlineExceeded)
                ticket.state = EXPIRED
            done(tag, None, handler.on_timeout(request))

        ticket.timer = self._loop.call_later(handler.timeout, expire)
        return ticket

    def _start_thread(self) -> None:
        with self._count_lock:
            self._threads += 1
            core = self._threads <= self._core
        thread = threading.Thread(target=self._work, args=(core,), daemon=True)
        thread.start()

    def _work(self, core: bool) -> None:
        try:
            while True:
                try:
                    if not self._one(core):
                        return
                except DeadlineExceeded:
                    continue  # a late interruption that missed its call: its client has its answer
        finally:
            with self._count_lock:
                self._threads -= 1

    def _one(self, core: bool) -> bool:
        """Run one job; False when this thread should exit."""
        try:
            job = self._jobs.get() if core else self._jobs.get(timeout=IDLE_EXIT)
        except queue.Empty:
            return False
        if job is None:
            return False
        func, arg, done, tag, learnt, ticket, gate = job
        start = perf_counter()
        try:
            if ticket is not None:
                with ticket.lock:
                    if ticket.state == EXPIRED:
                        raise DeadlineExceeded("expired before it started")
                    ticket.thread = threading.get_ident()
                    ticket.state = RUNNING
            result, error = func(arg), None
        except BaseException as exc:  # delivered to the loop thread
            result, error = None, exc
        if ticket is not None:
            result, error = self._settle(ticket, result, error)
        self._done.append((done, tag, result, error, learnt, gate, perf_counter() - start))
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # loop closed during shutdown
                return False
        return True

    @staticmethod
    def _settle(ticket: Ticket, result: Any, error: BaseException | None) -> tuple:
        """After a deadline call: make sure a late asynchronous TimeoutError cannot escape."""
        while True:
            try:
                with ticket.lock:
                    if ticket.state == RUNNING:
                        ticket.state = WAITING  # finished in time: expire() will not interrupt now
                if ticket.state == EXPIRED:
                    # NULL drops one pending asynchronous exception
                    _set_async_exc(threading.get_ident(), ctypes.py_object())
                return result, error
            except DeadlineExceeded:  # arrived between the call's return and here
                continue

    def _deliver(self) -> None:
        self._wake_pending = False
        finished = self._done
        while finished:
            done, tag, result, error, learnt, gate, elapsed = finished.popleft()
            self._outstanding -= 1
            if gate is not None:
                gate.running -= 1
                if gate.waiting:
                    call, ticket = gate.waiting.popleft()
                    gate.running += 1
                    self._submit(*call, ticket, gate)
            if learnt is not None and error is None:
                learnt.record(result.elapsed or elapsed)
            try:
                done(tag, result, error)
            except Exception as exc:  # noqa: BLE001 - one failure must not strand the batch
                diag(f"internal error delivering a result: {exc!r}")

    def close(self) -> None:
        """Stop the threads once the queued jobs are done (daemon threads: never blocks exit)."""
        self._closed = True
        for _ in range(self._threads):
            self._jobs.put(None)
