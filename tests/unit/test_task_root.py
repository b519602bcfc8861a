"""The working directory during Lambda calls (kinds/aws/environment.py: the task root gate)."""

from __future__ import annotations

import os
import threading

from flexilib.kinds.aws.environment import _TaskRootGate


def test_calls_run_in_their_folder_and_the_servers_is_restored(tmp_path):
    gate = _TaskRootGate()
    home = os.getcwd()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert gate.enter(str(a))
    assert gate.enter(str(a))  # the same folder: calls run together
    assert os.getcwd() == str(a)
    gate.leave()
    gate.leave()
    assert os.getcwd() == home
    assert gate.enter(str(b))
    assert os.getcwd() == str(b)
    gate.leave()
    assert os.getcwd() == home


def test_another_folder_waits_its_turn(tmp_path):
    gate = _TaskRootGate()
    home = os.getcwd()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert gate.enter(str(a))
    seen: list[str] = []
    entered = threading.Event()

    def other() -> None:
        assert gate.enter(str(b))
        seen.append(os.getcwd())
        entered.set()
        gate.leave()

    thread = threading.Thread(target=other)
    thread.start()
    assert not entered.wait(0.1)  # held while the call in `a` runs
    gate.leave()
    thread.join(5)
    assert seen == [str(b)]
    assert os.getcwd() == home


def test_a_call_that_cannot_get_its_folder_in_time_runs_where_it_is(tmp_path):
    gate = _TaskRootGate(wait=0.05)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert gate.enter(str(a))
    try:
        assert gate.enter(str(b)) is False  # e.g. `a` waits on an HTTP call to `b`
        assert os.getcwd() == str(a)
    finally:
        gate.leave()


def test_try_enter_never_waits(tmp_path):
    gate = _TaskRootGate()
    home = os.getcwd()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert gate.enter(str(a))
    assert gate.try_enter(str(a))  # the folder already entered: runs together
    assert not gate.try_enter(str(b))  # another folder: refused at once, nothing entered
    gate.leave()
    gate.leave()
    assert os.getcwd() == home
    assert gate.try_enter(str(b))
    assert os.getcwd() == str(b)
    gate.leave()
    assert os.getcwd() == home
