"""The file watcher with real files and real inotify, on an event loop this test runs.

"No reload" cannot be waited for, so each such check is closed by a *sentinel*: a
second tracked file is changed afterwards, and once its reload arrives every event
before it has been handled (one inotify queue, read in order on one loop).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from flexilib.runtime.slot import file_stamp
from flexilib.runtime.watch import Watcher

WAIT = 5.0
REPO = Path(__file__).resolve().parents[2]


class FakeSlot:
    """What the watcher needs of a slot: `spec.path` and `reload(reason)` (on the loop)."""

    def __init__(self, path: Path) -> None:
        self.spec = SimpleNamespace(path=str(path))
        self.reasons: list[str] = []

    def reload(self, reason: str) -> None:
        self.reasons.append(reason)


class FakeHandler:
    def __init__(self, *files: Path) -> None:
        self.files = list(files)

    def watched_files(self) -> list[Path]:
        return self.files


class Rig:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.loop = asyncio.new_event_loop()
        self.watcher = Watcher(self.loop)
        self.sentinel = self.slot("sentinel.py")

    def slot(self, name: str | Path, *more: Path) -> FakeSlot:
        """A slot for `folder/name` (and `more` files), tracked with the stamp it has now."""
        path = self.folder / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("loaded\n")
        slot = FakeSlot(path)
        self.watcher.track(slot, FakeHandler(path, *more), file_stamp(path))
        return slot

    def start(self) -> None:
        self.watcher.start()
        self.turn()

    def turn(self) -> None:
        """Run what the loop has ready now (reloads asked for are called soon, not at once)."""
        for _ in range(2):
            self.loop.run_until_complete(asyncio.sleep(0))

    def next_reload(self, slot: FakeSlot) -> str:
        """Run the loop until `slot` has one more reload; its reason."""
        count = len(slot.reasons)

        async def reloaded() -> None:
            while len(slot.reasons) == count:
                await asyncio.sleep(0.001)

        try:
            self.loop.run_until_complete(asyncio.wait_for(reloaded(), WAIT))
        except TimeoutError:
            pytest.fail(f"no reload of {slot.spec.path}")
        return slot.reasons[-1]

    def settle(self) -> None:
        """Return once every event before this call has been handled."""
        (self.folder / "sentinel.py").write_text(f"{len(self.sentinel.reasons)}\n")
        assert self.next_reload(self.sentinel) == "sentinel.py changed"
        self.turn()

    def stop(self) -> None:
        self.watcher.stop()
        self.loop.close()


@pytest.fixture
def rig(tmp_path):
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


def copy_over(path: Path) -> None:
    source = path.with_name("elsewhere.txt")
    source.write_text("copied\n" * 1000)
    subprocess.run(["cp", source, path], check=True)


def touch(path: Path) -> None:
    subprocess.run(["touch", path], check=True)


def link(path: Path, linker: str = "bfd") -> None:
    """A real linker writing the library in place (bfd: delete, create, write, close, chmod;
    gold: create, allocate, write through a shared memory map, close)."""
    if shutil.which(f"ld.{linker}") is None:
        pytest.skip(f"no ld.{linker} here")
    subprocess.run(
        ["gcc", f"-fuse-ld={linker}", "-shared", "-fPIC", "-DVERSION=7", f"-I{REPO / 'include'}"]
        + ["-o", path, REPO / "bench" / "handlers" / "version.c"],
        check=True,
    )


def link_with_gold(path: Path) -> None:
    link(path, "gold")


@pytest.mark.parametrize(
    "change",
    [
        write_in_pieces,
        replace_by_rename,
        delete_and_recreate,
        copy_over,
        touch,
        link,
        link_with_gold,
    ],
)
def test_a_change_to_a_tracked_file_reloads_its_slot_once(rig, change):
    slot = rig.slot("handler.so")
    rig.start()
    change(rig.folder / "handler.so")
    assert rig.next_reload(slot) == "handler.so changed"
    rig.settle()
    assert len(slot.reasons) == 1  # one burst, one reload


def test_a_file_still_open_for_writing_is_not_reloaded_until_it_is_closed(rig):
    slot = rig.slot("handler.py")
    rig.start()
    with open(rig.folder / "handler.py", "w") as file:
        file.write("def handle_request(request):\n")
        file.flush()
        rig.settle()
        assert slot.reasons == []  # half written: never loaded
        file.write("    return 'whole'\n")
    assert rig.next_reload(slot) == "handler.py changed"


def test_a_plain_file_created_in_place_waits_for_its_close(rig):
    slot = rig.slot("handler.py")
    rig.start()
    (rig.folder / "handler.py").unlink()
    with open(rig.folder / "handler.py", "x") as file:
        rig.settle()
        assert slot.reasons == []
        file.write("created\n")
    assert rig.next_reload(slot) == "handler.py changed"


def test_every_file_a_handler_was_loaded_from_is_watched(rig):
    helper = rig.folder / "pkg" / "helper.py"
    helper.parent.mkdir()
    helper.write_text("x = 1\n")
    slot = rig.slot("main.py", helper)
    rig.start()
    helper.write_text("x = 2\n")
    assert rig.next_reload(slot) == "helper.py changed"


def test_other_files_written_in_the_folder_reload_nothing(rig):
    slot = rig.slot("handler.py")
    rig.start()
    with open(rig.folder / "access.log", "a") as log:  # a log kept open and appended to
        for n in range(100):
            log.write(f"line {n}\n")
            log.flush()
    (rig.folder / "notes.txt").write_text("not a handler\n")
    replace_by_rename(rig.folder / "other.py")
    (rig.folder / "other.py").unlink()
    rig.settle()
    assert slot.reasons == []


def test_many_handlers_in_one_folder_share_one_watch_and_reload_alone(rig):
    slots = [rig.slot(f"handler{n}.py") for n in range(20)]
    rig.start()
    assert len(rig.watcher._folders) == 1
    (rig.folder / "handler7.py").write_text("changed\n")
    assert rig.next_reload(slots[7]) == "handler7.py changed"
    rig.settle()
    assert [n for n, slot in enumerate(slots) if slot.reasons] == [7]


def test_a_forgotten_slot_is_not_reloaded_and_its_folder_not_watched(rig):
    slot = rig.slot("other/handler.py")
    rig.start()
    assert len(rig.watcher._folders) == 2
    rig.watcher.forget(slot)
    assert list(rig.watcher._folders) == [str(rig.folder.resolve())]
    (rig.folder / "other" / "handler.py").write_text("changed\n")
    rig.settle()
    assert slot.reasons == []


def test_a_handler_moved_to_another_folder_is_watched_there(rig):
    old = rig.slot("v1/handler.py")
    rig.start()
    rig.watcher.forget(old)  # the config now names v2/handler.py: a new slot
    new = rig.slot("v2/handler.py")
    shutil.move(rig.folder / "v1" / "handler.py", rig.folder / "moved.py")
    (rig.folder / "v2" / "handler.py").write_text("changed\n")
    assert rig.next_reload(new) == "handler.py changed"
    rig.settle()
    assert old.reasons == []


def test_a_file_moved_away_and_back_reloads_when_back(rig):
    slot = rig.slot("handler.py")
    rig.start()
    os.rename(rig.folder / "handler.py", rig.folder / "handler.py.bak")
    rig.settle()
    assert slot.reasons == []  # gone: a load would fail, the old version keeps serving
    os.rename(rig.folder / "handler.py.bak", rig.folder / "handler.py")
    assert rig.next_reload(slot) == "handler.py changed"


def test_a_change_during_a_load_in_a_folder_not_watched_yet_is_seen(rig):
    rig.start()
    path = rig.folder / "new" / "handler.py"
    path.parent.mkdir()
    path.write_text("loaded\n")
    stamp = file_stamp(path)  # taken before loading
    path.write_text("changed while loading\n")  # no watch exists yet
    slot = FakeSlot(path)
    rig.watcher.track(slot, FakeHandler(path), stamp)
    assert rig.next_reload(slot) == "handler.py changed"
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
    assert rig.next_reload(slot) == "late.py changed"
    rig.settle()
    assert len(slot.reasons) == 1


def test_a_folder_deleted_and_recreated_is_watched_again(rig):
    slot = rig.slot("app/site/handler.py")  # app/ holds nothing else watched
    rig.start()
    shutil.rmtree(rig.folder / "app" / "site")
    rig.settle()
    (rig.folder / "app" / "site").mkdir()
    rig.settle()  # the new folder is watched: a write now is an event
    assert slot.reasons == []  # nothing to load yet
    (rig.folder / "app" / "site" / "handler.py").write_text("recreated\n")
    assert rig.next_reload(slot) == "handler.py changed"


def test_a_folder_appearing_later_is_watched_then(rig):
    (rig.folder / "app").mkdir()  # holds nothing else watched
    path = rig.folder / "app" / "later" / "deeper" / "helper.py"
    slot = rig.slot("main.py", path)  # a file of the handler whose folder does not exist
    rig.start()
    path.parent.mkdir(parents=True)
    rig.settle()
    path.write_text("x = 1\n")
    assert rig.next_reload(slot) == "helper.py changed"


def test_a_folder_replaced_by_rename_is_compared_when_watched_again(rig):
    slot = rig.slot("site/handler.py")
    rig.start()
    staged = rig.folder / "site.new"
    staged.mkdir()
    (staged / "handler.py").write_text("new release\n")
    shutil.rmtree(rig.folder / "site")
    os.rename(staged, rig.folder / "site")
    assert rig.next_reload(slot) == "handler.py changed"


def test_a_symlinked_file_reloads_when_its_target_is_written(rig):
    target = rig.folder / "build" / "libreal.so"
    target.parent.mkdir()
    target.write_text("v1\n")
    (rig.folder / "live.so").symlink_to(target)
    slot = rig.slot("live.so")
    rig.start()
    target.write_text("v2\n")
    assert rig.next_reload(slot) == "live.so changed"


def test_a_symlink_swapped_to_another_target_reloads(rig):
    for name in ("a.so", "b.so"):
        (rig.folder / name).write_text(name)
    (rig.folder / "live.so").symlink_to("a.so")
    slot = rig.slot("live.so")
    rig.start()
    subprocess.run(["ln", "-sfn", "b.so", rig.folder / "live.so"], check=True)
    assert rig.next_reload(slot) == "live.so changed"
    rig.settle()
    assert len(slot.reasons) == 1


def test_a_configmap_style_data_swap_reloads(rig):
    """Kubernetes: handler.py -> ..data/handler.py, ..data -> ..v1; an update swaps ..data."""
    mount = rig.folder / "mount"
    for version in ("..v1", "..v2"):
        (mount / version).mkdir(parents=True)
        (mount / version / "handler.py").write_text(f"{version}\n")
    (mount / "..data").symlink_to("..v1")
    (mount / "handler.py").symlink_to("..data/handler.py")
    slot = rig.slot("mount/handler.py")
    rig.start()
    (mount / "..data_tmp").symlink_to("..v2")
    os.rename(mount / "..data_tmp", mount / "..data")
    assert rig.next_reload(slot) == "handler.py changed"


def test_a_hard_link_made_onto_the_name_reloads(rig):
    slot = rig.slot("handler.py")
    rig.start()
    (rig.folder / "new.py").write_text("linked\n")
    (rig.folder / "handler.py").unlink()
    os.link(rig.folder / "new.py", rig.folder / "handler.py")
    assert rig.next_reload(slot) == "handler.py changed"


def test_events_the_kernel_dropped_are_made_up_for_by_the_stamps(rig):
    slot = rig.slot("handler.py")
    rig.start()
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    files = [os.open(rig.folder / name, os.O_CREAT | os.O_WRONLY) for name in ("a", "b")]
    for n in range(limit):  # nobody reads meanwhile: the queue overflows
        os.fchmod(files[n % 2], 0o644)  # alternating, so the kernel cannot merge them
    for fd in files:
        os.close(fd)
    (rig.folder / "handler.py").write_text("changed after the overflow\n")  # its event is lost
    assert rig.next_reload(slot) == "handler.py changed"


def test_a_symlinked_folder_swapped_to_a_new_release_reloads_and_follows_it(rig):
    """current -> releases/v1; a deploy points `current` at releases/v2."""
    for version in ("v1", "v2"):
        (rig.folder / "releases" / version).mkdir(parents=True)
        (rig.folder / "releases" / version / "handler.py").write_text(f"{version}\n")
    (rig.folder / "current").symlink_to("releases/v1")
    slot = rig.slot("current/handler.py")
    rig.start()
    subprocess.run(["ln", "-sfn", "releases/v2", rig.folder / "current"], check=True)
    assert rig.next_reload(slot) == "handler.py changed"
    live = rig.folder / "current" / "handler.py"
    rig.watcher.track(slot, FakeHandler(live), file_stamp(live))  # as the reload does
    rig.settle()
    (rig.folder / "releases" / "v1" / "handler.py").write_text("the old release\n")
    rig.settle()
    assert len(slot.reasons) == 1
    (rig.folder / "releases" / "v2" / "handler.py").write_text("the live release\n")
    assert rig.next_reload(slot) == "handler.py changed"
