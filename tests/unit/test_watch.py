"""The file watcher with real files and real inotify, its loop running in a background thread.

"No reload" cannot be waited for, so each such check is closed by a *sentinel*: a
second tracked file is changed afterwards, and once its reload arrives every event
before it has been handled (one watch thread, delivered in order on one loop).
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from flexilib.runtime import watch
from flexilib.runtime.slot import file_stamp
from flexilib.runtime.watch import Watcher

WAIT = 5.0


class FakeSlot:
    """What the watcher needs of a slot: `spec.path` and `reload(reason)` (on the loop)."""

    def __init__(self, path: Path) -> None:
        self.spec = SimpleNamespace(path=str(path))
        self.reasons: list[str] = []
        self.reloaded = threading.Event()

    def reload(self, reason: str) -> None:
        self.reasons.append(reason)
        self.reloaded.set()

    def next_reload(self) -> str:
        assert self.reloaded.wait(WAIT), f"no reload of {self.spec.path}"
        self.reloaded.clear()
        return self.reasons[-1]


class FakeHandler:
    def __init__(self, *files: Path) -> None:
        self.files = list(files)

    def watched_files(self) -> list[Path]:
        return self.files


class Rig:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.watcher = Watcher(self.loop)
        self.live = threading.Event()
        compare = self.watcher._compare

        def spy(only):  # a (re)started watch compares every stamp once it is live
            compare(only)
            if only is None:
                self.live.set()

        self.watcher._compare = spy
        self.sentinel = self.slot("sentinel.py")

    def slot(self, name: str) -> FakeSlot:
        """A slot for `folder/name`, tracked with the file's stamp as it was when loaded."""
        path = self.folder / name
        if not path.exists():
            path.write_text("loaded\n")
        slot = FakeSlot(path)
        self.watcher.track(slot, FakeHandler(path), file_stamp(path))
        return slot

    def start(self) -> None:
        self.watcher.start()
        assert self.live.wait(WAIT), "the watch never went live"

    def settle(self) -> None:
        """Return once every event before this call has been handled."""
        (self.folder / "sentinel.py").write_text(f"{len(self.sentinel.reasons)}\n")
        assert self.sentinel.next_reload() == "sentinel.py changed"

    def stop(self) -> None:
        self.watcher.stop()
        if self.watcher._thread is not None:
            self.watcher._thread.join(WAIT)
            assert not self.watcher._thread.is_alive()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


@pytest.fixture
def rig(tmp_path, monkeypatch):
    # a new watch reports itself live after this long without events (the default is
    # tuned for a server, where it costs nothing; here it would be most of each test)
    monkeypatch.setattr(watch, "LIVE_CHECK_MS", 20)
    rig = Rig(tmp_path)
    yield rig
    rig.stop()


def write_in_pieces(path: Path) -> None:
    with open(path, "w") as file:  # truncate, then write, as cp and linkers do
        for n in range(5):
            file.write(f"piece {n}\n" * 100)
            file.flush()
            os.fsync(file.fileno())


def replace_by_rename(path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("renamed into place\n")
    os.replace(tmp, path)


def delete_and_recreate(path: Path) -> None:
    path.unlink()
    path.write_text("recreated\n")


@pytest.mark.parametrize("change", [write_in_pieces, replace_by_rename, delete_and_recreate])
def test_a_change_to_a_tracked_file_reloads_its_slot_once(rig, change):
    slot = rig.slot("handler.py")
    rig.start()
    change(rig.folder / "handler.py")
    assert slot.next_reload() == "handler.py changed"
    rig.settle()
    assert len(slot.reasons) == 1  # one burst, one reload


def test_every_file_a_handler_was_loaded_from_is_watched(rig):
    main, helper = rig.folder / "main.py", rig.folder / "helper.py"
    main.write_text("import helper\n")
    helper.write_text("x = 1\n")
    slot = FakeSlot(main)
    rig.watcher.track(slot, FakeHandler(main, helper), file_stamp(main))
    rig.start()
    helper.write_text("x = 2\n")
    assert slot.next_reload() == "helper.py changed"


def test_an_untracked_file_in_the_same_folder_reloads_nothing(rig):
    slot = rig.slot("handler.py")
    rig.start()
    (rig.folder / "notes.txt").write_text("not a handler\n")
    replace_by_rename(rig.folder / "other.py")
    rig.settle()
    assert slot.reasons == []


def test_a_forgotten_slot_is_not_reloaded(rig):
    slot = rig.slot("handler.py")
    rig.start()
    rig.watcher.forget(slot)
    (rig.folder / "handler.py").write_text("changed\n")
    rig.settle()
    assert slot.reasons == []


def test_a_change_between_load_and_a_new_watch_going_live_is_seen(rig):
    path = rig.folder / "handler.py"
    path.write_text("loaded\n")
    stamp = file_stamp(path)  # taken before loading
    path.write_text("changed while loading\n")  # no watch exists yet
    slot = FakeSlot(path)
    rig.watcher.track(slot, FakeHandler(path), stamp)
    rig.start()
    assert slot.next_reload() == "handler.py changed"
    rig.settle()
    assert len(slot.reasons) == 1


def test_a_change_during_a_load_in_an_already_watched_folder_is_seen(rig):
    rig.start()
    path = rig.folder / "late.py"
    path.write_text("loaded\n")
    stamp = file_stamp(path)
    path.write_text("changed while loading\n")  # before this file was tracked
    rig.settle()  # those events found nothing tracked: only the stamp can tell
    slot = FakeSlot(path)
    rig.watcher.track(slot, FakeHandler(path), stamp)
    assert slot.next_reload() == "late.py changed"
    rig.settle()
    assert len(slot.reasons) == 1
