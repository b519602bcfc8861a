"""The handler slot as a state machine: loads finish when the test says, versions are fakes.

The fake dispatcher queues each load; `finish()` runs the oldest one (its `load()`) and
delivers the outcome as the real dispatcher would. Handlers come from a factory of
fakes put in place of `create_handler`, so every version is known by number.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flexilib.config import HandlerSpec
from flexilib.runtime import slot as slot_module
from flexilib.runtime.handler import HandlerLoadError
from flexilib.runtime.slot import HandlerSlot, file_stamp

WAIT = 5.0


class FakeHandler:
    def __init__(self, spec: HandlerSpec, number: int, failure: BaseException | None) -> None:
        self.spec = spec
        self.number = number
        self.failure = failure
        self.loaded = False
        self.closed = 0

    def load(self) -> None:
        if self.failure is not None:
            raise self.failure
        self.loaded = True

    def close(self) -> None:
        self.closed += 1

    def __repr__(self) -> str:
        return f"<version {self.number}>"


class Factory:
    """Stands in for `create_handler`; `fail_next` makes the next version's load raise."""

    def __init__(self) -> None:
        self.made: list[FakeHandler] = []
        self.fail_next: list[BaseException] = []

    def __call__(self, spec: HandlerSpec) -> FakeHandler:
        failure = self.fail_next.pop(0) if self.fail_next else None
        self.made.append(FakeHandler(spec, len(self.made) + 1, failure))
        return self.made[-1]


class FakeDispatcher:
    def __init__(self) -> None:
        self.jobs: list[tuple[Callable, Any, Callable, Any]] = []

    def submit(self, func: Callable, arg: Any, done: Callable, tag: Any = None) -> None:
        self.jobs.append((func, arg, done, tag))

    def finish(self) -> None:
        """Run the oldest queued job and hand its outcome to `done`."""
        func, arg, done, tag = self.jobs.pop(0)
        try:
            result, error = func(arg), None
        except BaseException as exc:
            result, error = None, exc
        done(tag, result, error)


class Waiter:
    """A request waiting for a version: records what it was given, in a shared log."""

    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log
        self.handler: FakeHandler | None = None
        self.error: BaseException | None = None

    def __call__(self, handler: FakeHandler | None, error: BaseException | None) -> None:
        self.handler, self.error = handler, error
        self.log.append(self.name)


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


class Rig:
    def __init__(self, loop, tmp_path: Path, monkeypatch) -> None:
        self.loop = loop
        self.factory = Factory()
        monkeypatch.setattr(slot_module, "create_handler", self.factory)
        self.file = tmp_path / "handler.py"
        self.file.write_text("version 1\n")
        spec = HandlerSpec("python", "handler.py", str(self.file), base_dir=tmp_path)
        self.dispatcher = FakeDispatcher()
        self.loaded: list[tuple[FakeHandler, Any]] = []
        self.slot = HandlerSlot(spec, self.dispatcher, self.on_loaded)
        self.log: list[str] = []

    def on_loaded(self, slot: HandlerSlot, handler: FakeHandler, stamp: Any) -> None:
        assert slot is self.slot
        self.loaded.append((handler, stamp))

    def finish(self) -> None:
        """Complete the oldest load, on the running loop as the pool's delivery would."""

        async def deliver() -> None:
            self.dispatcher.finish()

        self.loop.run_until_complete(deliver())

    def waiter(self, name: str) -> Waiter:
        waiter = Waiter(name, self.log)
        self.slot.wait(waiter)
        return waiter

    def serving(self) -> FakeHandler:
        """Load the first version and leave it serving with nothing in flight."""
        waiter = self.waiter("first")
        self.finish()
        self.slot.release(waiter.handler)
        return waiter.handler


@pytest.fixture
def rig(loop, tmp_path, monkeypatch) -> Rig:
    return Rig(loop, tmp_path, monkeypatch)


def test_first_use_loads_once_and_serves_the_waiters_in_order(rig):
    slot = rig.slot
    assert slot.acquire() is None and rig.dispatcher.jobs == []  # nothing loads before use
    first, second = rig.waiter("first"), rig.waiter("second")
    assert len(rig.dispatcher.jobs) == 1  # one load for both
    assert rig.log == []
    rig.finish()
    [v1] = rig.factory.made
    assert rig.log == ["first", "second"]
    assert first.handler is second.handler is v1 and v1.loaded
    assert slot.current is v1 and slot.inflight == 2 and slot.version == 1
    assert rig.loaded == [(v1, file_stamp(rig.file))]  # told, with the stamp before loading
    assert slot.acquire() is v1 and slot.inflight == 3
    for _ in range(3):
        slot.release(v1)
    assert slot.inflight == 0 and v1.closed == 0


@pytest.mark.parametrize(
    "failure", [HandlerLoadError("no such file"), SyntaxError("bad code")], ids=["load", "other"]
)
def test_a_load_failure_answers_every_waiter_and_the_next_request_tries_again(rig, failure):
    rig.factory.fail_next.append(failure)
    first, second = rig.waiter("first"), rig.waiter("second")
    rig.finish()
    assert rig.log == ["first", "second"]
    assert first.handler is None and second.handler is None
    assert first.error is second.error and isinstance(first.error, HandlerLoadError)
    if failure.__class__ is not HandlerLoadError:
        assert "bad code" in str(first.error)  # wrapped, the cause named
    assert rig.slot.current is None and rig.loaded == []
    third = rig.waiter("third")
    assert len(rig.dispatcher.jobs) == 1  # tries again
    rig.finish()
    assert third.handler is rig.factory.made[1] and third.error is None


def test_reload_swaps_once_the_old_version_has_drained(rig):
    slot = rig.slot
    v1 = rig.serving()
    running = slot.acquire()  # a request in flight on version 1
    slot.reload("handler.py changed")
    assert len(rig.dispatcher.jobs) == 1
    assert slot.acquire() is v1  # while the new version loads, requests still go to the old
    slot.release(v1)
    rig.finish()
    v2 = rig.factory.made[1]
    assert slot.version == 2 and rig.loaded[-1][0] is v2
    assert slot.acquire() is None  # loaded: new requests now wait for the drain
    late = rig.waiter("late")
    assert late.handler is None and v1.closed == 0
    assert slot._timer is not None  # the drain is bounded
    slot.release(running)  # the last request on version 1 finishes there
    assert v1.closed == 1 and slot.current is v2
    assert late.handler is v2 and slot.inflight == 1
    assert slot._timer is None  # the bound is cancelled once drained
    slot.release(v2)
    assert v2.closed == 0


def test_a_reload_with_nothing_in_flight_swaps_at_once(rig):
    v1 = rig.serving()
    rig.slot.reload("changed")
    rig.finish()
    v2 = rig.factory.made[1]
    assert rig.slot.current is v2 and v1.closed == 1 and rig.slot._timer is None


def test_a_failed_reload_keeps_the_old_version_serving(rig):
    v1 = rig.serving()
    rig.factory.fail_next.append(HandlerLoadError("syntax error"))
    rig.slot.reload("changed")
    rig.finish()
    assert rig.slot.current is v1 and rig.slot.version == 1 and v1.closed == 0
    assert rig.slot.acquire() is v1
    rig.slot.release(v1)
    rig.slot.reload("fixed")  # the next change loads again
    rig.finish()
    assert rig.slot.current is rig.factory.made[2] and v1.closed == 1


def test_a_reload_before_the_first_load_is_left_to_the_first_request(rig):
    rig.slot.reload("changed")
    assert rig.dispatcher.jobs == [] and rig.factory.made == []


def test_a_change_while_loading_loads_again(rig):
    slot = rig.slot
    v1 = rig.serving()
    running = slot.acquire()
    slot.reload("changed")
    slot.reload("changed again")
    assert len(rig.dispatcher.jobs) == 1  # not two loads at once
    rig.finish()
    v2 = rig.factory.made[1]
    assert len(rig.dispatcher.jobs) == 1  # the second load started as soon as the first ended
    rig.finish()
    v3 = rig.factory.made[2]
    assert v2.closed == 1  # superseded before it ever served
    slot.release(running)
    assert slot.current is v3 and v1.closed == 1 and slot.version == 3


def test_past_drain_wait_the_new_version_takes_new_requests_and_the_old_closes_after_its_own(
    rig, monkeypatch
):
    monkeypatch.setattr(slot_module, "DRAIN_WAIT", 0.001)
    slot = rig.slot
    v1 = rig.serving()
    long_poll = slot.acquire()
    slot.reload("changed")
    rig.finish()
    v2 = rig.factory.made[1]
    served = rig.loop.create_future()
    slot.wait(lambda handler, error: served.set_result(handler))
    assert rig.loop.run_until_complete(asyncio.wait_for(served, WAIT)) is v2  # the timer fired
    assert slot.current is v2 and v1.closed == 0  # the long request still runs on version 1
    assert slot.acquire() is v2
    slot.release(v2)
    slot.release(v2)
    assert v1.closed == 0
    slot.release(long_poll)
    assert v1.closed == 1 and v2.closed == 0


def test_the_drain_timer_calls_drain_overdue(rig):
    v1 = rig.serving()
    running = rig.slot.acquire()
    rig.slot.reload("changed")
    rig.finish()
    timer = rig.slot._timer
    assert timer is not None and not timer.cancelled()
    timer.cancel()  # played by hand below
    late = rig.waiter("late")
    rig.slot._drain_overdue()
    assert late.handler is rig.factory.made[1] and rig.slot._timer is None
    rig.slot.release(late.handler)
    rig.slot.release(running)
    assert v1.closed == 1


def test_retire_closes_once_idle(rig):
    slot = rig.slot
    v1 = rig.serving()
    running = slot.acquire()
    slot.retire()
    assert v1.closed == 0
    slot.release(running)
    assert v1.closed == 1 and slot.current is None
    slot.reload("changed")  # a retired slot is no longer watched for changes
    assert rig.dispatcher.jobs == []


def test_a_retired_slot_still_answers_a_request_routed_to_it_before(rig):
    slot = rig.slot
    v1 = rig.serving()
    slot.retire()
    assert v1.closed == 1  # idle: closed at once
    before = rig.waiter("routed before the swap")  # its body was still arriving
    assert len(rig.dispatcher.jobs) == 1
    rig.finish()
    v2 = rig.factory.made[1]
    assert before.handler is v2 and before.error is None
    assert rig.loaded == [(v1, rig.loaded[0][1])]  # a retired slot is not watched again
    slot.release(v2)
    assert v2.closed == 1


def test_a_version_loading_when_retired_is_closed_with_the_one_serving(rig):
    slot = rig.slot
    v1 = rig.serving()
    slot.reload("changed")
    slot.retire()
    rig.finish()
    v2 = rig.factory.made[1]
    assert v2.closed == 1
    assert v1.closed == 1 and slot.current is None


def test_a_failed_load_when_retired_still_closes_the_one_serving(rig):
    v1 = rig.serving()
    rig.factory.fail_next.append(HandlerLoadError("broken"))
    rig.slot.reload("changed")
    rig.slot.retire()
    rig.finish()
    assert v1.closed == 1 and rig.slot.current is None


def test_shutdown_closes_every_version_once(rig, monkeypatch):
    slot = rig.slot
    v1 = rig.serving()
    old_request = slot.acquire()
    slot.reload("changed")
    rig.finish()
    slot._timer.cancel()
    slot._drain_overdue()  # version 1 drains its request, version 2 serves
    v2 = slot.acquire()
    slot.reload("changed again")
    rig.finish()  # version 3 waits for version 2 to drain
    v3 = rig.factory.made[2]
    assert old_request is v1 and v2 is rig.factory.made[1]
    assert slot._timer is not None
    timer = slot._timer
    slot.shutdown()
    assert [v.closed for v in (v1, v2, v3)] == [1, 1, 1]
    assert timer.cancelled() and slot.current is None
