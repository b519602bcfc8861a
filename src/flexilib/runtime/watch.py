"""Watching handler files with inotify on the worker's event loop, and asking slots to reload.

Folders are watched, not files, so a file replaced by rename or deleted and
recreated is still seen. One inotify descriptor per worker, read by the event
loop when it is readable (`loop.add_reader`): no thread, no polling.

Which events. Only the ones that say a file is *complete*: closed after
writing (`IN_CLOSE_WRITE`: an editor's save, `cp`, `gcc -o`, gold writing
through a memory map), renamed into place (`IN_MOVED_TO`: `mv`, `sed -i`,
lld), metadata changed (`IN_ATTRIB`: `touch`, `chmod`) and a symlink or hard
link created (`IN_CREATE`, checked with `lstat`: a plain file just created
is still being written, its close follows). `IN_MODIFY` (one event per
`write(2)`) is not asked for: a file being written is never loaded, and another
process appending to a file in a watched folder (an access log) costs it
nothing. With `IN_MODIFY` and `IN_OPEN` in the mask (watchfiles' choice) an
nginx writing its access log into a watched folder served 0.70x the req/s at
1.27x the CPU per request, and the watcher thread used 0.66 s of CPU per 5 s
run; with this mask 1.12x and 0.89x (noise) and 0.00 s (bench/watch_cost.py,
5 rounds, one sitting).

The cost: a writer that keeps a handler file open is not seen until it closes
it. That is the rule that keeps half-written files out, so there is no timer
falling back to polling: it could only add loads of files still being written.

Latency. Events of one build or save come within a millisecond of each other
(`gcc`'s close then `chmod`: under 0.8 ms in 15 builds; `cp`'s create then
close; an editor saving several modules): they are gathered until `SETTLE_MS`
pass without one (at most `MAX_SETTLE_MS` after the first), and one burst is
one reload per handler. watchfiles reported a burst after 100 ms without an
event, checked every 100 ms: that was 100-200 ms of the 100-200 ms a swap took
(strace and the reload log lines; the load and the swap take 1-2 ms). Now a
swap takes about 13 ms (bench/run.py --quick).

Symlinks. Every path met resolving a watched file counts, each in its
resolved folder (a watch follows an inode, not a path): each symlink on the
way (the file's own name if it is one, a Kubernetes ConfigMap's `..data`, a
`current -> releases/v3` folder) and the file it resolves to. Replacing any
of them, or writing the target in its own folder, reloads; the reload
resolves the paths again.

Stamps (inode, size, modification and change times) decide only where no event
could be seen. An event naming a watched file always reloads it, even if the
stamp looks the same (a file opened for writing and closed unchanged): two
same-size writes within one tick of a coarse file-time clock (1-4 ms on
kernels without fine-grained timestamps) share a stamp, and a needless reload
costs 1-2 ms where a missed one serves old code.

inotify reports only what happens while a watch exists. `inotify_add_watch`
is synchronous, so each watched file's stamp (taken before its version was
loaded) is compared with the file right after the watch is added: a change
during a load or while a folder was missing still reloads. A folder that does
not exist (yet, or any more) is waited for by watching its nearest existing
parent for the folder to appear. A queue overflow (events lost) compares
every stamp.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from flexilib.log import diag
from flexilib.runtime.slot import Stamp, file_stamp

if TYPE_CHECKING:
    from flexilib.runtime.handler import Handler
    from flexilib.runtime.slot import HandlerSlot

__all__ = ["Inotify", "Watcher"]

SETTLE_MS = 10  # a burst of events ends after this long without one...
MAX_SETTLE_MS = 200  # ...or this long after its first event

# <sys/inotify.h>
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x1000000
IN_ISDIR = 0x40000000

# the file is whole now; IN_CREATE only for a link (see _complete)
COMPLETE = IN_CLOSE_WRITE | IN_MOVED_TO | IN_ATTRIB
#: what a watched folder reports: complete files, names appearing, the folder itself moving
#: (its removal always comes as IN_IGNORED). Deletions are not asked for: a load would fail.
MASK = COMPLETE | IN_CREATE | IN_MOVE_SELF | IN_ONLYDIR
APPEARED = IN_CREATE | IN_MOVED_TO

_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name


class Inotify:
    """One inotify descriptor (non-blocking, close-on-exec) through libc."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._check(
            self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC), "inotify_init1"
        )

    def add(self, folder: str) -> int:
        """Watch `folder`; its watch descriptor (the same one for two paths of one folder)."""
        return self._check(self._libc.inotify_add_watch(self.fd, os.fsencode(folder), MASK), folder)

    def remove(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)  # fails only for a watch already gone

    def read(self) -> list[tuple[int, int, str]]:
        """The events queued now: (watch descriptor, mask, name in the folder)."""
        events: list[tuple[int, int, str]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            offset = 0
            while offset < len(data):
                wd, mask, _, size = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                name = data[offset : offset + size].rstrip(b"\0")
                offset += size
                events.append((wd, mask, os.fsdecode(name)))

    def close(self) -> None:
        os.close(self.fd)

    @staticmethod
    def _check(result: int, what: str) -> int:
        if result < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno), what)
        return result


class Watcher:
    """Maps watched files to the slots that loaded them; runs on the worker's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._files: dict[Path, dict[HandlerSlot, Stamp]] = {}  # file -> its slots' stamps
        self._paths: dict[Path, set[str]] = {}  # file -> paths met resolving it
        self._named: dict[str, set[Path]] = {}  # such a path -> the files it stands for
        self._folders: dict[str, int] = {}  # watched folder -> watch descriptor
        self._wds: dict[int, set[str]] = {}  # watch descriptor -> its folder's paths
        self._inotify: Inotify | None = None
        self._due: set[Path] = set()  # files a complete event named, waiting for the burst's end
        self._resync = False  # the burst moved or removed a folder, or lost events
        self._recheck_all = False  # the kernel dropped events: compare every stamp
        self._timer: asyncio.TimerHandle | None = None
        self._burst_ends = 0.0  # loop time after which a burst is flushed whatever follows

    # -- what is watched -------------------------------------------------------
    def track(self, slot: HandlerSlot, handler: Handler, stamp: Stamp) -> None:
        """Watch the files `handler` was loaded from; `stamp`: its main file's, before loading."""
        main = Path(slot.spec.path).absolute()
        files = {Path(f).absolute() for f in handler.watched_files()}
        self._drop(slot)
        folders: dict[str, tuple[str, set[str]]] = {}  # resolved once per folder
        for file in files:
            self._index(file, _paths_of(str(file), folders))
        self._sync()  # from here on a change is an event
        for file in files:
            self._files.setdefault(file, {})[slot] = stamp if file == main else file_stamp(file)
        # a change to the main file while this version loaded shows in its stamp only
        self._reload(self._compare({main}, only=slot))

    def forget(self, slot: HandlerSlot) -> None:
        """The slot left the config: stop watching what only it needed."""
        self._drop(slot)
        self._sync()

    def _drop(self, slot: HandlerSlot) -> None:
        for file in [f for f, slots in self._files.items() if slot in slots]:
            del self._files[file][slot]
            if not self._files[file]:
                del self._files[file]
                self._index(file, set())

    def _index(self, file: Path, paths: set[str]) -> None:
        """Make `paths` the ones whose events stand for `file`."""
        for path in self._paths.pop(file, set()):
            self._named[path].discard(file)
            if not self._named[path]:
                del self._named[path]
        if paths:
            self._paths[file] = paths
            for path in paths:
                self._named.setdefault(path, set()).add(file)

    # -- the inotify watches ---------------------------------------------------
    def start(self) -> None:
        """Open the inotify descriptor on the loop and watch what is tracked so far."""
        try:
            self._inotify = Inotify()
        except OSError as exc:
            diag(f"handler files are not watched (no reload on change): {exc}")
            return
        self._loop.add_reader(self._inotify.fd, self._read)
        self._reload(self._compare(self._sync()))

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._inotify is not None:
            self._loop.remove_reader(self._inotify.fd)
            self._inotify.close()
            self._inotify = None
        self._folders.clear()
        self._wds.clear()

    def _sync(self) -> set[Path]:
        """Watch the folders the tracked paths are in, or for a missing one its nearest
        existing parent; unwatch the rest. Returns the tracked files in newly watched folders."""
        if self._inotify is None:
            return set()
        keep: set[str] = set()
        added: set[str] = set()
        for folder in {os.path.dirname(path) for path in self._named}:
            while folder not in self._folders:
                try:
                    wd = self._inotify.add(folder)
                except (FileNotFoundError, NotADirectoryError):
                    if folder == "/":
                        break
                    folder = os.path.dirname(folder)  # wait for the missing folder to appear
                    continue
                except OSError as exc:  # out of watches (fs.inotify.max_user_watches), EACCES
                    diag(f"cannot watch {folder}, changes there are not seen: {exc.strerror}")
                    break
                self._folders[folder] = wd
                self._wds.setdefault(wd, set()).add(folder)
                added.add(folder)
            keep.add(folder)
        for folder in set(self._folders) - keep:
            self._unwatch(folder)
        return {
            file
            for path, files in self._named.items()
            if os.path.dirname(path) in added
            for file in files
        }

    def _unwatch(self, folder: str) -> None:
        wd = self._folders.pop(folder)
        paths = self._wds.get(wd, set())
        paths.discard(folder)
        if not paths:
            self._wds.pop(wd, None)
            if self._inotify is not None:
                self._inotify.remove(wd)

    # -- events ------------------------------------------------------------------
    def _read(self) -> None:
        if self._inotify is None:
            return
        news = False  # something to act on: other files' events must not delay a reload
        for wd, mask, name in self._inotify.read():
            if mask & IN_Q_OVERFLOW:  # events were lost: only the stamps can tell
                self._recheck_all = self._resync = news = True
            elif mask & (IN_IGNORED | IN_MOVE_SELF):  # the folder went: watch for its return
                if wd not in self._wds:
                    continue  # a watch this watcher removed itself
                for folder in self._wds.pop(wd):
                    del self._folders[folder]
                if mask & IN_MOVE_SELF:
                    self._inotify.remove(wd)  # the watch would follow it to its new name
                self._resync = news = True
            else:
                for folder in self._wds.get(wd, ()):
                    news |= self._event(os.path.join(folder, name), mask)
        if news:
            self._settle()

    def _event(self, path: str, mask: int) -> bool:
        """Note what the event means; whether it means anything."""
        files = self._named.get(path)
        if files:
            if _complete(path, mask):
                self._due |= files
                return True
        elif mask & IN_ISDIR and mask & APPEARED:
            self._resync = True  # maybe a folder that was missing: watch it now
            return True
        return False

    def _settle(self) -> None:
        """(Re)arm the burst's timer: `SETTLE_MS` after this event, `MAX_SETTLE_MS` at most."""
        now = self._loop.time()
        if self._timer is None:
            self._burst_ends = now + MAX_SETTLE_MS / 1000
        else:
            self._timer.cancel()
        self._timer = self._loop.call_at(min(now + SETTLE_MS / 1000, self._burst_ends), self._flush)

    def _flush(self) -> None:
        """The burst is over: reload every slot whose files it completed or changed."""
        self._timer = None
        changed: dict[HandlerSlot, set[str]] = {}
        if self._resync:  # watch what appeared; what changed meanwhile shows in the stamps
            self._resync = False
            recheck = set(self._files) if self._recheck_all else set()
            self._recheck_all = False
            changed = self._compare(self._sync() | recheck)
        due, self._due = self._due, set()
        for file in due:
            now = file_stamp(file)
            for slot in self._files.get(file, {}):
                self._files[file][slot] = now
                changed.setdefault(slot, set()).add(file.name)
        self._reload(changed)

    def _compare(
        self, files: set[Path], only: HandlerSlot | None = None
    ) -> dict[HandlerSlot, set[str]]:
        """The slots (all, or `only`) whose stamp of one of `files` differs from the file."""
        changed: dict[HandlerSlot, set[str]] = {}
        for file in files:
            slots = self._files.get(file, {})
            now = file_stamp(file)
            for slot, stamp in slots.items():
                if (only is None or slot is only) and stamp != now:
                    slots[slot] = now
                    if now is not None:  # gone: a load would fail; its return is an event
                        changed.setdefault(slot, set()).add(file.name)
        return changed

    def _reload(self, changed: dict[HandlerSlot, set[str]]) -> None:
        # soon, not now: track() runs inside a slot's load callback, before it takes the version
        for slot, names in changed.items():
            self._loop.call_soon(slot.reload, f"{', '.join(sorted(names))} changed")


def _complete(path: str, mask: int) -> bool:
    """Whether the event says the file at `path` is whole: written and closed, renamed into
    place, touched, or a link just created (a plain file just created is still being
    written: its close follows)."""
    if mask & COMPLETE:
        return True
    if mask & IN_CREATE:
        try:
            st = os.lstat(path)
        except OSError:
            return False
        return stat.S_ISLNK(st.st_mode) or st.st_nlink > 1
    return False


def _paths_of(file: str, folders: dict[str, tuple[str, set[str]]]) -> set[str]:
    """Every symlink met resolving `file` and the path it resolves to, each in a folder
    without symlinks (the one inotify watches: a watch follows the inode, not the path).
    `folders`: resolutions of folders already done (many files share one)."""
    parent, name = os.path.split(file)
    if parent not in folders:
        folders[parent] = _resolve("/", parent.split("/"))
    here, links = folders[parent]
    resolved, more = _resolve(here, [name])
    return {resolved, *links, *more}


def _resolve(start: str, parts: list[str]) -> tuple[str, set[str]]:
    """Walk `parts` from the resolved folder `start` like the kernel does:
    the path reached and every symlink passed. A missing part ends the symlinks."""
    links: set[str] = set()
    todo = parts[::-1]
    here = start
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            here = os.path.dirname(here)
            continue
        path = os.path.join(here, part)
        try:
            target = os.readlink(path)
        except OSError:  # not a symlink, or missing
            here = path
            continue
        hops += 1
        if hops > 40:  # a loop (ELOOP): the load fails anyway
            return path, links
        links.add(path)
        if target.startswith("/"):
            here = "/"
        todo.extend(target.split("/")[::-1])
    return here, links
