"""The dispatcher driven step by step: a real event loop, fake handlers, real pool threads.

Every wait is on a future resolved by `done`, an event or a barrier, bounded by `WAIT`.
Call times are what the fake handler reports (`Response.elapsed`), so which class runs
where never depends on how fast this machine happens to be.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from flexilib.runtime import dispatch
from flexilib.runtime.dispatch import (
    FAST,
    MAX_CLASSES,
    MAX_INLINE_BODY,
    PROMOTE,
    PROMOTE_MAX,
    SLOW,
    DeadlineExceeded,
    Dispatcher,
    NotInline,
    Overloaded,
    RequestClass,
)

WAIT = 5.0  # bound on every wait; a test that reaches it has failed
QUICK = FAST / 10  # a call time that counts as fast
SLUGGISH = SLOW * 10  # a call time that stalls the loop


@dataclass
class Result:
    """What a handler returns: the dispatcher reads only `.elapsed`."""

    thread: int
    elapsed: float = QUICK


class Request:
    def __init__(
        self, target: bytes = b"/a", method: bytes = b"GET", headers=(), body: bytes = b""
    ) -> None:
        self.raw_method = method
        self.raw_target = target
        self.raw_headers = list(headers)
        self.body = body


class TimedOut(Exception):
    """What the fake handler's on_timeout() answers."""


class Handler:
    """A sync handler: `call` runs `body` (if any) and reports `elapsed` seconds."""

    def __init__(self, dispatch: str = "auto", timeout: float | None = None, body=None) -> None:
        self.dispatch = dispatch
        self.timeout = timeout
        self.classes: dict = {}
        self.concurrency: int | None = None
        self.queue_limit = 64
        self.gate = None
        self.elapsed = QUICK
        self.body = body
        self.threads: list[int] = []
        self.timeouts: list[TimedOut] = []

    def call(self, request: Request) -> Result:
        self.threads.append(threading.get_ident())
        if self.body is not None:
            self.body(request)
        return Result(threading.get_ident(), self.elapsed)

    def on_timeout(self, request: Request) -> TimedOut:
        error = TimedOut("deadline")
        self.timeouts.append(error)
        return error


@dataclass
class Outcome:
    tag: Any
    result: Any
    error: BaseException | None
    thread: int  # where `done` ran


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def make(loop):
    made: list[Dispatcher] = []

    def make(threads: int = 2, max_threads: int = 2) -> Dispatcher:
        made.append(Dispatcher(loop, threads, max_threads))
        return made[-1]

    yield make
    for dispatcher in made:
        dispatcher.close()


class Done:
    """A `done` callback whose outcomes are futures on the loop, one per expected call."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.outcomes: list[Outcome] = []
        self.waiting: list[tuple[int, asyncio.Future]] = []

    def __call__(self, tag: Any, result: Any, error: BaseException | None) -> None:
        self.outcomes.append(Outcome(tag, result, error, threading.get_ident()))
        while self.waiting and len(self.outcomes) >= self.waiting[0][0]:
            self.waiting.pop(0)[1].set_result(None)

    def wait(self, count: int) -> list[Outcome]:
        """Run the loop until `count` outcomes have arrived in all."""
        if len(self.outcomes) < count:
            future = self.loop.create_future()
            self.waiting.append((count, future))
            self.loop.run_until_complete(asyncio.wait_for(future, WAIT))
        return self.outcomes[:count]


def call(loop, dispatcher: Dispatcher, handler: Handler, request: Request, tag=None) -> Outcome:
    """One request through `run`, the loop run until its `done`."""
    done = Done(loop)
    dispatcher.run(handler, request, done, tag)
    [outcome] = done.wait(1)
    return outcome


LOOP_THREAD = threading.get_ident()  # run_until_complete runs the loop on this thread


def test_request_class_learns_from_fast_calls_and_doubles_its_proof_after_a_demotion():
    learnt = RequestClass()
    for _ in range(PROMOTE - 1):
        learnt.record(QUICK)
    learnt.record(FAST * 2)  # a slow pool call is not counted
    assert not learnt.inline and learnt.fast == PROMOTE - 1
    learnt.record(QUICK)
    assert learnt.inline
    learnt.demote()
    assert (learnt.inline, learnt.fast, learnt.needed) == (False, 0, PROMOTE * 2)
    for _ in range(PROMOTE * 2 - 1):
        learnt.record(QUICK)
    assert not learnt.inline
    learnt.record(QUICK)
    assert learnt.inline
    for _ in range(20):
        learnt.demote()
    assert learnt.needed == PROMOTE_MAX  # bounded


def test_a_new_class_runs_on_the_pool_and_runs_inline_after_promote_fast_calls(loop, make):
    dispatcher, handler = make(), Handler()
    for n in range(PROMOTE):
        outcome = call(loop, dispatcher, handler, Request(b"/a?n=1"), tag=n)
        assert outcome.tag == n and outcome.error is None
        assert outcome.result.thread != LOOP_THREAD  # ran on a pool thread
        assert outcome.thread == LOOP_THREAD  # delivered on the loop thread
    [learnt] = handler.classes.values()
    assert learnt.inline and learnt.fast == PROMOTE
    outcome = call(loop, dispatcher, handler, Request(b"/a?n=1"))
    assert outcome.result.thread == LOOP_THREAD  # inline: an exact repeat of a fast request
    # anything the client varies is another class, back on the pool: the query, the path,
    # the method, a header's name or value, the body
    for request in (
        Request(b"/a?n=2"),
        Request(b"/b?n=1"),
        Request(b"/a?n=1", method=b"POST"),
        Request(b"/a?n=1", headers=[(b"x-slow", b"1")]),
        Request(b"/a?n=1", headers=[(b"x-slow", b"2")]),
        Request(b"/a?n=1", body=b"sleep=3000"),
    ):
        assert call(loop, dispatcher, handler, request).result.thread != LOOP_THREAD
    assert len(handler.classes) == 7


def test_a_large_body_never_runs_inline_nor_is_hashed(loop, make):
    dispatcher, handler = make(), Handler()
    big = Request(b"/a", body=b"x" * (MAX_INLINE_BODY + 1))
    for _ in range(PROMOTE + 2):
        assert call(loop, dispatcher, handler, big).result.thread != LOOP_THREAD
    assert handler.classes == {}


def test_slow_or_failed_pool_calls_do_not_promote(loop, make):
    dispatcher = make()
    slow = Handler()
    slow.elapsed = FAST * 2
    for _ in range(PROMOTE + 1):
        assert call(loop, dispatcher, slow, Request()).result.thread != LOOP_THREAD
    [learnt] = slow.classes.values()
    assert not learnt.inline and learnt.fast == 0

    def fail(request):
        raise ValueError("handler bug")

    failing = Handler(body=fail)
    for _ in range(PROMOTE + 1):
        outcome = call(loop, dispatcher, failing, Request())
        assert isinstance(outcome.error, ValueError) and outcome.result is None
    assert all(thread != LOOP_THREAD for thread in failing.threads)


def promoted(loop, dispatcher: Dispatcher, handler: Handler, request: Request) -> RequestClass:
    for _ in range(PROMOTE):
        call(loop, dispatcher, handler, request)
    [learnt] = handler.classes.values()
    assert learnt.inline
    return learnt


def test_a_slow_inline_call_sends_its_class_back_to_the_pool_needing_twice_the_proof(loop, make):
    dispatcher, handler = make(), Handler()
    learnt = promoted(loop, dispatcher, handler, Request())
    handler.elapsed = SLUGGISH
    outcome = call(loop, dispatcher, handler, Request())
    assert outcome.result.thread == LOOP_THREAD and outcome.error is None  # answered all the same
    assert not learnt.inline and learnt.needed == PROMOTE * 2
    handler.elapsed = QUICK
    for _ in range(PROMOTE * 2):
        assert call(loop, dispatcher, handler, Request()).result.thread != LOOP_THREAD
    assert call(loop, dispatcher, handler, Request()).result.thread == LOOP_THREAD


def test_an_inline_call_that_fails_slowly_is_slow_too(loop, make, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(dispatch, "perf_counter", lambda: clock[0])

    def fail(request):
        clock[0] += SLUGGISH  # the wall time the failing call took
        raise ValueError("handler bug")

    dispatcher, handler = make(), Handler()
    learnt = promoted(loop, dispatcher, handler, Request())
    handler.body = fail
    outcome = call(loop, dispatcher, handler, Request())
    assert isinstance(outcome.error, ValueError) and outcome.thread == LOOP_THREAD
    assert not learnt.inline


def test_an_inline_call_that_cannot_run_on_the_loop_thread_now_runs_on_the_pool(loop, make):
    def refuse_on_the_loop_thread(request):
        if threading.get_ident() == LOOP_THREAD:
            raise NotInline("it would wait for a lock a pool call holds")

    dispatcher, handler = make(), Handler(dispatch="inline", body=refuse_on_the_loop_thread)
    outcome = call(loop, dispatcher, handler, Request())
    assert outcome.error is None and outcome.result.thread != LOOP_THREAD
    assert handler.threads == [LOOP_THREAD, outcome.result.thread]  # tried inline first


@pytest.mark.parametrize("policy, inline", [("inline", True), ("pool", False)])
def test_a_fixed_policy_is_never_learnt(loop, make, policy, inline):
    dispatcher, handler = make(), Handler(dispatch=policy)
    handler.elapsed = SLUGGISH if inline else QUICK  # the opposite of what its policy says
    for _ in range(PROMOTE + 2):
        outcome = call(loop, dispatcher, handler, Request())
        assert (outcome.result.thread == LOOP_THREAD) is inline
    assert handler.classes == {}


def test_the_class_table_is_bounded(loop, make):
    dispatcher, handler = make(), Handler()
    handler.classes.update({n: RequestClass() for n in range(MAX_CLASSES)})
    call(loop, dispatcher, handler, Request(b"/new"))
    assert len(handler.classes) == 1 and all(n >= MAX_CLASSES or n < 0 for n in handler.classes)


def test_submit_passes_the_tag_through_and_delivers_errors(loop, make):
    dispatcher, done = make(), Done(loop)

    def boom(arg):
        raise KeyError(arg)

    dispatcher.submit(str.upper, "abc", done, "first")
    dispatcher.submit(boom, "x", done, "second")
    first, second = sorted(done.wait(2), key=lambda o: o.tag)
    assert (first.tag, first.result, first.error) == ("first", "ABC", None)
    assert second.tag == "second" and isinstance(second.error, KeyError)


def test_a_call_within_its_timeout_is_answered_and_never_interrupted_later(loop, make):
    dispatcher, handler = make(1, 1), Handler(timeout=WAIT)
    outcome = call(loop, dispatcher, handler, Request())
    assert outcome.error is None and outcome.result.thread != LOOP_THREAD
    assert handler.timeouts == []
    # the same thread runs Python code afterwards without a stray DeadlineExceeded
    done = Done(loop)
    dispatcher.submit(lambda n: sum(range(n)), 100_000, done)
    assert done.wait(1)[0].result == sum(range(100_000))


def test_a_python_loop_past_its_deadline_is_interrupted_and_its_thread_freed(loop, make):
    started, interrupted = threading.Event(), []

    def spin(request):
        started.set()
        end = time.monotonic() + 4 * WAIT  # bounded, far past any deadline used here
        try:
            while time.monotonic() < end:
                pass
        except DeadlineExceeded as exc:
            interrupted.append(exc)
            raise

    dispatcher = make(1, 1)  # one thread: the next job runs only if the spin stopped
    handler = Handler(timeout=0.05, body=spin)
    done = Done(loop)
    dispatcher.run(handler, Request(), done, "spin")
    [outcome] = done.wait(1)
    assert started.is_set()
    assert outcome.tag == "spin" and outcome.result is None
    assert outcome.error is handler.timeouts[0]  # on_timeout()'s error, once
    after = Done(loop)
    dispatcher.submit(str.upper, "next", after)
    assert after.wait(1)[0].result == "NEXT"  # the single thread is free again
    assert len(interrupted) == 1
    assert len(done.outcomes) == 1  # the interrupted call's own outcome was dropped


def test_a_late_result_is_dropped(loop, make):
    release = threading.Event()
    dispatcher = make(1, 1)
    handler = Handler(timeout=0.05, body=lambda request: release.wait(WAIT))  # blocked in C
    done = Done(loop)
    dispatcher.run(handler, Request(), done, "late")
    [outcome] = done.wait(1)
    assert outcome.error is handler.timeouts[0]
    release.set()  # now the call returns (or is interrupted as it does)
    after = Done(loop)
    dispatcher.submit(str.upper, "next", after)  # queued behind it on the one thread
    assert after.wait(1)[0].result == "NEXT"
    assert len(done.outcomes) == 1 and len(handler.timeouts) == 1


def test_a_call_whose_deadline_passes_while_queued_never_starts(loop, make):
    release = threading.Event()
    dispatcher = make(1, 1)
    busy = Done(loop)
    dispatcher.submit(lambda _: release.wait(WAIT), None, busy)  # occupies the one thread
    handler = Handler(timeout=0.05)
    done = Done(loop)
    dispatcher.run(handler, Request(), done, "queued")
    [outcome] = done.wait(1)
    assert outcome.error is handler.timeouts[0]
    release.set()
    busy.wait(1)
    after = Done(loop)
    dispatcher.submit(str.upper, "next", after)
    assert after.wait(1)[0].result == "NEXT"
    assert handler.threads == [] and len(done.outcomes) == 1


def test_the_pool_grows_toward_max_threads_while_every_thread_is_busy(loop, make):
    dispatcher = make(1, 3)
    together = threading.Barrier(3, timeout=WAIT)  # passes only if 3 calls run at once
    done = Done(loop)
    for n in range(3):
        dispatcher.submit(lambda _: (together.wait(), threading.get_ident())[1], n, done)
    outcomes = done.wait(3)
    assert all(o.error is None for o in outcomes)
    assert len({o.result for o in outcomes}) == 3


def test_the_pool_stops_growing_at_max_threads(loop, make):
    dispatcher = make(1, 2)
    pairs = threading.Barrier(2, timeout=WAIT)  # four calls pass it two at a time
    done = Done(loop)
    for n in range(4):
        dispatcher.submit(lambda _: (pairs.wait(), threading.get_ident())[1], n, done)
    outcomes = done.wait(4)
    assert all(o.error is None for o in outcomes)
    assert len({o.result for o in outcomes}) == 2


def test_close_finishes_queued_jobs_then_refuses_and_the_threads_leave(loop, make):
    release, threads = threading.Event(), []
    dispatcher = make(1, 1)
    done = Done(loop)

    def job(arg):
        threads.append(threading.current_thread())
        release.wait(WAIT)
        return arg

    dispatcher.submit(job, "queued before close", done)
    dispatcher.close()
    refused = Done(loop)
    dispatcher.run(Handler(dispatch="pool"), Request(), refused, "late")
    [outcome] = refused.wait(1)
    assert outcome.tag == "late" and isinstance(outcome.error, RuntimeError)
    assert "stopping" in str(outcome.error)
    release.set()
    assert done.wait(1)[0].result == "queued before close"
    threads[0].join(WAIT)
    assert not threads[0].is_alive()


def test_a_gate_runs_concurrency_calls_queues_the_next_and_refuses_the_rest(loop, make):
    release = threading.Event()
    handler = Handler(dispatch="pool", body=lambda request: release.wait(5))
    handler.concurrency, handler.queue_limit = 2, 1
    dispatcher, done = make(4, 4), Done(loop)
    for n in range(4):
        dispatcher.run(handler, Request(b"/slow"), done, n)
    [refused] = done.wait(1)  # the fourth: two running, one waiting, no room left
    assert refused.tag == 3 and isinstance(refused.error, Overloaded)
    assert refused.error.status == 503
    assert refused.error.response.headers == [("Retry-After", "1")]
    assert (handler.gate.running, len(handler.gate.waiting)) == (2, 1)
    release.set()
    outcomes = done.wait(4)
    assert sorted(o.tag for o in outcomes[1:]) == [0, 1, 2] and all(
        o.error is None for o in outcomes[1:]
    )
    assert (handler.gate.running, len(handler.gate.waiting)) == (0, 0)


def test_a_queued_call_past_its_deadline_is_answered_and_never_runs(loop, make):
    release = threading.Event()
    ran = []

    def body(request):
        ran.append(request.raw_target)
        release.wait(5)

    handler = Handler(dispatch="pool", timeout=WAIT / 10, body=body)
    handler.concurrency, handler.queue_limit = 1, 4
    dispatcher, done = make(2, 2), Done(loop)
    dispatcher.run(handler, Request(b"/first"), done, "first")
    dispatcher.run(handler, Request(b"/queued"), done, "queued")
    timed_out = done.wait(2)  # both deadlines pass: the running call and the waiting one
    assert sorted(o.tag for o in timed_out) == ["first", "queued"]
    assert all(isinstance(o.error, TimedOut) for o in timed_out), timed_out
    release.set()
    wait_for = time.monotonic() + 5
    while handler.gate.running and time.monotonic() < wait_for:
        loop.run_until_complete(asyncio.sleep(0.01))
    assert ran == [b"/first"] and handler.gate.running == 0
