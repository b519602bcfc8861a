"""Watching handler files (inotify through watchfiles) and asking their slots to reload.

Folders are watched, not files, so a file replaced by rename or deleted and
recreated is still seen. watchfiles coalesces a burst of events (a linker
writing in pieces, `cp` truncating then writing) into one batch: a batch ends
after `STEP_MS` without a new event, or after `DEBOUNCE_MS` at most, and one
batch causes one reload per handler.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from flexilib.accesslog import diag

if TYPE_CHECKING:
    from flexilib.handlers.base import Handler
    from flexilib.handlers.slot import HandlerSlot

__all__ = ["Watcher"]

STEP_MS = 100
DEBOUNCE_MS = 1600


class Watcher:
    """Maps watched files to the slots that loaded them; one background thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._files: dict[Path, set[HandlerSlot]] = {}
        self._lock = threading.Lock()
        self._changed = threading.Event()  # the set of folders changed: restart the watch
        self._stopping = False
        self._thread: threading.Thread | None = None

    def track(self, slot: HandlerSlot, handler: Handler) -> None:
        """Watch the files `handler` was loaded from (called for each loaded version)."""
        files = {Path(f).absolute() for f in handler.watched_files()}
        with self._lock:
            before = self._folders()
            self._drop(slot)
            for file in files:
                self._files.setdefault(file, set()).add(slot)
            if self._folders() != before:
                self._changed.set()

    def forget(self, slot: HandlerSlot) -> None:
        with self._lock:
            self._drop(slot)

    def _drop(self, slot: HandlerSlot) -> None:
        for file in [f for f, slots in self._files.items() if slot in slots]:
            self._files[file].discard(slot)
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
            try:
                for batch in watchfiles.watch(
                    *folders,
                    watch_filter=None,
                    debounce=DEBOUNCE_MS,
                    step=STEP_MS,
                    stop_event=self._changed,
                    recursive=False,
                    raise_interrupt=False,
                ):
                    self._dispatch({Path(path) for _, path in batch})
            except Exception as exc:  # noqa: BLE001 - a vanished folder must not stop watching
                diag(f"file watching restarted after: {exc!r}")
                self._changed.wait(1.0)

    def _dispatch(self, paths: set[Path]) -> None:
        with self._lock:
            touched = {slot for path in paths for slot in self._files.get(path, ())}
        for slot in touched:
            names = ", ".join(sorted(str(p.name) for p in paths if slot in self._files.get(p, ())))
            self._loop.call_soon_threadsafe(slot.reload, f"{names or 'file'} changed")
