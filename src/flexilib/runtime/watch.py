"""Watching handler files (inotify through watchfiles) and asking their slots to reload.

Folders are watched, not files, so a file replaced by rename or deleted and
recreated is still seen. watchfiles coalesces a burst of events (a linker
writing in pieces, `cp` truncating then writing) into one batch: a batch ends
after `STEP_MS` without a new event, or after `DEBOUNCE_MS` at most, and one
batch causes one reload per handler.

inotify only reports what happens while a watch exists, and the watch is
restarted whenever the set of folders changes (a handler in a new folder was
loaded). So each watched file keeps the stamp it had when its version was
loaded, and once a (re)started watch is live every stamp is compared with
the file: a change made during a load or between two watches still reloads.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from flexilib.log import diag
from flexilib.runtime.slot import Stamp, file_stamp

if TYPE_CHECKING:
    from flexilib.runtime.handler import Handler
    from flexilib.runtime.slot import HandlerSlot

__all__ = ["Watcher"]

STEP_MS = 100
DEBOUNCE_MS = 1600
LIVE_CHECK_MS = 500  # a new watch yields after this even without events: it is live then


class Watcher:
    """Maps watched files to the slots that loaded them; one background thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._files: dict[Path, dict[HandlerSlot, Stamp]] = {}
        self._lock = threading.Lock()
        self._changed = threading.Event()  # the set of folders changed: restart the watch
        self._stopping = False
        self._thread: threading.Thread | None = None

    def track(self, slot: HandlerSlot, handler: Handler, stamp: Stamp) -> None:
        """Watch the files `handler` was loaded from; `stamp`: its main file's, before loading."""
        main = Path(slot.spec.path).absolute()
        files = {Path(f).absolute() for f in handler.watched_files()}
        with self._lock:
            before = self._folders()
            self._drop(slot)
            for file in files:
                self._files.setdefault(file, {})[slot] = stamp if file == main else file_stamp(file)
            if self._folders() != before:
                self._changed.set()  # the new watch compares every stamp once it is live
                return
        self._compare({slot})  # watched already: only a change during the load can be missed

    def forget(self, slot: HandlerSlot) -> None:
        with self._lock:
            self._drop(slot)

    def _drop(self, slot: HandlerSlot) -> None:
        for file in [f for f, slots in self._files.items() if slot in slots]:
            del self._files[file][slot]
            if not self._files[file]:
                del self._files[file]

    def _folders(self) -> set[Path]:
        return {file.parent for file in self._files if file.parent.is_dir()}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="flexilib-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._changed.set()

    def _run(self) -> None:
        import watchfiles

        while not self._stopping:
            with self._lock:
                folders = sorted(self._folders())
                self._changed.clear()
            if not folders:
                self._changed.wait()
                continue
            live = False
            try:
                for batch in watchfiles.watch(
                    *folders,
                    watch_filter=None,
                    debounce=DEBOUNCE_MS,
                    step=STEP_MS,
                    stop_event=self._changed,
                    rust_timeout=LIVE_CHECK_MS,
                    yield_on_timeout=True,
                    recursive=False,
                    raise_interrupt=False,
                ):
                    if batch:
                        self._dispatch({Path(path) for _, path in batch})
                    if not live:  # anything yielded: the watch exists now
                        live = True
                        self._compare(None)
            except Exception as exc:  # noqa: BLE001 - a vanished folder must not stop watching
                diag(f"file watching restarted after: {exc!r}")
                self._changed.wait(1.0)

    def _compare(self, only: set[HandlerSlot] | None) -> None:
        """Reload the slots (all, or `only`) whose files differ from their stamps."""
        changed: dict[HandlerSlot, set[str]] = {}
        with self._lock:
            for file, slots in self._files.items():
                now = file_stamp(file)
                for slot, stamp in slots.items():
                    if (only is None or slot in only) and stamp != now:
                        slots[slot] = now
                        changed.setdefault(slot, set()).add(file.name)
        for slot, names in changed.items():
            self._reload(slot, names)

    def _dispatch(self, paths: set[Path]) -> None:
        changed: dict[HandlerSlot, set[str]] = {}
        with self._lock:
            for path in paths:
                slots = self._files.get(path, {})
                for slot in slots:
                    slots[slot] = file_stamp(path)
                    changed.setdefault(slot, set()).add(path.name)
        for slot, names in changed.items():
            self._reload(slot, names)

    def _reload(self, slot: HandlerSlot, names: set[str]) -> None:
        reason = f"{', '.join(sorted(names))} changed"
        try:
            self._loop.call_soon_threadsafe(slot.reload, reason)
        except RuntimeError:  # the loop closed: the worker is stopping
            pass
