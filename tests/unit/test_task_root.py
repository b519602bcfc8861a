"""The working directory during Lambda calls (kinds/aws/environment.py: the task root gate)."""

from __future__ import annotations

import os
import threading

import pytest

from flexilib.kinds.aws.environment import _TaskRootGate


@pytest.fixture
def folders(tmp_path):
    """Two function folders, `a` and `b`, as strings."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    return str(a), str(b)


def test_calls_run_in_their_folder_and_the_servers_is_restored(folders):
    gate = _TaskRootGate()
    home = os.getcwd()
    a, b = folders
    assert gate.enter(a)
    assert gate.enter(a)  # the same folder: calls run together
    assert os.getcwd() == a
    gate.leave()
    gate.leave()
    assert os.getcwd() == home
    assert gate.enter(b)
    assert os.getcwd() == b
    gate.leave()
    assert os.getcwd() == home


def test_another_folder_waits_its_turn(folders):
    gate = _TaskRootGate()
    home = os.getcwd()
    a, b = folders
    assert gate.enter(a)
    seen: list[str] = []
    entered = threading.Event()

    def other() -> None:
        assert gate.enter(b)
        seen.append(os.getcwd())
        entered.set()
        gate.leave()

    thread = threading.Thread(target=other)
    thread.start()
    assert not entered.wait(0.1)  # held while the call in `a` runs
    gate.leave()
    thread.join(5)
    assert seen == [b]
    assert os.getcwd() == home


def test_a_call_that_cannot_get_its_folder_in_time_runs_where_it_is(folders):
    gate = _TaskRootGate(wait=0.05)
    a, b = folders
    assert gate.enter(a)
    try:
        assert gate.enter(b) is False  # e.g. `a` waits on an HTTP call to `b`
        assert os.getcwd() == a
    finally:
        gate.leave()


def test_try_enter_never_waits(folders):
    gate = _TaskRootGate()
    home = os.getcwd()
    a, b = folders
    assert gate.enter(a)
    assert gate.try_enter(a)  # the folder already entered: runs together
    assert not gate.try_enter(b)  # another folder: refused at once, nothing entered
    gate.leave()
    gate.leave()
    assert os.getcwd() == home
    assert gate.try_enter(b)
    assert os.getcwd() == b
    gate.leave()
    assert os.getcwd() == home
