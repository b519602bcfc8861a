"""A `lambda:` call made on the server's loop thread (kinds/aws/function.py, inline dispatch).

The calls run inside a real running event loop, as the dispatcher makes them from a
protocol callback: the function must find no loop running and one of its own, and the
call must never wait there for the working directory.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from flexilib.config import parse_target
from flexilib.kinds.aws.environment import task_root_gate
from flexilib.kinds.aws.function import LambdaHandler
from flexilib.request import Request
from flexilib.runtime.dispatch import NotInline

FUNCTION = """
import asyncio
import os
import time


async def work():
    await asyncio.sleep(0)
    return "ran"


def nap(event, context):
    time.sleep(0.005)
    return {"statusCode": 200, "body": "rested"}


def handler(event, context):
    return {
        "cwd": os.getcwd(),
        "get_event_loop": asyncio.get_event_loop().run_until_complete(work()),
        "run": asyncio.run(work()),
    }
"""


@pytest.fixture
def function(tmp_path: Path) -> LambdaHandler:
    folder = tmp_path / "fn"
    folder.mkdir()
    (folder / "inline_fn.py").write_text(FUNCTION)
    handler = LambdaHandler(parse_target(f"lambda:{folder / 'inline_fn.py'}:handler", tmp_path))
    handler.load()
    return handler


def request() -> Request:
    return Request(b"GET", b"/", [(b"Host", b"h")], b"", ("127.0.0.1", 1))


def on_the_loop_thread(call):
    """`call()` made from inside a running loop's callback, as an inline dispatch is."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # as the worker does

    async def inline():
        result = call()
        return result, asyncio.get_running_loop() is loop, asyncio.get_event_loop() is loop

    try:
        return loop.run_until_complete(inline())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_an_inline_call_runs_its_own_event_loops_and_leaves_the_servers_in_place(function):
    response, still_running, still_current = on_the_loop_thread(lambda: function.call(request()))
    assert response.status == 200
    assert json.loads(response.body) == {
        "cwd": function.task_root,
        "get_event_loop": "ran",
        "run": "ran",
    }
    assert still_running and still_current


def test_an_inline_call_never_waits_for_another_functions_folder(function, tmp_path):
    home = os.getcwd()
    busy = tmp_path / "busy"
    busy.mkdir()
    assert task_root_gate.enter(str(busy))  # a pool call of another function runs there
    try:
        with pytest.raises(NotInline):
            on_the_loop_thread(lambda: function.call(request()))
        assert os.getcwd() == str(busy)  # nothing entered, nothing left
    finally:
        task_root_gate.leave()
    assert os.getcwd() == home
    response, _, _ = on_the_loop_thread(lambda: function.call(request()))
    assert json.loads(response.body)["cwd"] == function.task_root
    assert os.getcwd() == home


def test_a_call_that_blocked_reports_its_wall_time_to_the_dispatcher(tmp_path, function):
    """A call that slept stalled the loop for as long: it must not look fast, whatever the
    CPU time it used (only time the kernel took the CPU away is not the call's)."""
    nap = LambdaHandler(
        parse_target(f"lambda:{Path(function.task_root) / 'inline_fn.py'}:nap", tmp_path)
    )
    nap.load()
    response, _, _ = on_the_loop_thread(lambda: nap.call(request()))
    assert response.body == b"rested"
    assert response.elapsed >= 0.005
