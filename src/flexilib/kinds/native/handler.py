"""Native shared libraries through the original FlexiLib C interface.

Loading is ctypes' job (`dlopen`, symbol lookup); each request goes through
the `flexilib._native` C extension, which lays the request out in a
per-thread buffer (`RESPONSE_PREALLOCATION_KB` big, as the original
pre-allocates per thread), calls `handle_request` without the GIL, and
copies the response out of the library's memory before `request_deinit`
runs on the same thread, so the library may free or reuse it at once. Doing
that marshalling with ctypes cost several times the server's whole budget
per request.

A library that exports `zigInit` (a Zig library written for the original)
gets, before each request and on the thread that then calls
`handle_request`, a pointer to that thread's arena allocator as a Zig 0.13
`std.mem.Allocator` (the extension's zigarena.c; README "Zig libraries").

Each version is `dlopen`ed from a private copy of the file, so a build tool
overwriting the live file in place can never change code that is running.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import threading
from pathlib import Path

from flexilib.config import HandlerSpec
from flexilib.kinds.native import _native
from flexilib.kinds.native.elfcheck import incomplete
from flexilib.request import Request
from flexilib.response import Response
from flexilib.runtime.handler import BlockingHandler, HandlerError, HandlerLoadError

__all__ = ["NativeHandler", "remove_private_copies", "set_crash_board", "set_preallocation"]

_private_dir: Path | None = None
_private_lock = threading.Lock()
_private_names = itertools.count(1)


def set_preallocation(kb: int) -> None:
    """Set the per-thread buffer size (RESPONSE_PREALLOCATION_KB) before serving."""
    _native.set_preallocation(kb)


def set_crash_board(address: int, cells: int) -> None:
    """Where this process's threads mark the library they are calling (see server/scoreboard.py)."""
    _native.set_crash_board(address, cells)


def _private_copy(path: str) -> str:
    """Copy `path` to a per-process folder under a fresh name, for dlopen.

    The folder (`$TMPDIR`, else /tmp; mode 0700, a random name) is made with
    `os` calls rather than `tempfile`, and the copy numbered within it: no one
    else can write there, so a counter names files as safely as mkstemp, and
    leaving tempfile, shutil and random out of the worker (the master preloads
    this module for it) saved 0.3 MB of idle PSS (master + 1 worker).
    """
    global _private_dir
    with _private_lock:
        if _private_dir is None:
            parent = os.environ.get("TMPDIR") or "/tmp"
            folder = Path(parent, f"flexilib-{os.getpid()}-{os.urandom(6).hex()}")
            folder.mkdir(mode=0o700)
            _private_dir = folder
        copy = _private_dir / f"{next(_private_names)}-{Path(path).name}"
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
        while chunk := src.read(1 << 20):
            out.write(chunk)
    return str(copy)


def remove_private_copies() -> None:
    """Remove this process's folder of private copies (each is unlinked once mapped)."""
    global _private_dir
    with _private_lock:
        if _private_dir is not None:
            with contextlib.suppress(OSError):  # gone already: nothing to remove
                for entry in os.scandir(_private_dir):
                    os.unlink(entry.path)
                os.rmdir(_private_dir)
            _private_dir = None


class NativeHandler(BlockingHandler):
    """A `.so` exporting `handle_request` (and optionally `request_deinit`)."""

    def __init__(self, spec: HandlerSpec) -> None:
        super().__init__(spec)
        self._lib: ctypes.CDLL | None = None
        self._handle_request = 0  # function addresses, for flexilib._native.call
        self._deinit = 0
        self._zig_init = 0
        self._marker = spec.marker  # on the crash board while a call runs

    def load(self) -> None:
        path = self.spec.path
        if not os.path.isfile(path):
            raise HandlerLoadError(f"cannot load {path}: no such file")
        try:
            copy = _private_copy(path)
        except OSError as exc:
            raise HandlerLoadError(f"cannot load {path}: {exc.strerror or exc}") from None
        try:
            cut_short = incomplete(copy)  # dlopen would map it anyway, then SIGBUS
            if cut_short:
                raise HandlerLoadError(f"cannot load {path}: {cut_short}")
            lib = ctypes.CDLL(copy, mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except OSError as exc:
            raise HandlerLoadError(f"cannot load {path}: {exc}") from None
        finally:
            os.unlink(copy)  # the mapping stays valid; nothing is left on disk
        try:
            handle = lib.handle_request
        except AttributeError:
            _dlclose(lib)
            raise HandlerLoadError(f"cannot load {path}: no handle_request symbol") from None
        deinit = getattr(lib, "request_deinit", None)
        zig_init = getattr(lib, "zigInit", None)
        self._handle_request = _address(handle)
        self._deinit = _address(deinit) if deinit is not None else 0
        self._zig_init = _address(zig_init) if zig_init is not None else 0
        self._lib = lib

    def close(self) -> None:
        lib, self._lib = self._lib, None
        self._handle_request = self._deinit = self._zig_init = 0
        if lib is not None:
            _dlclose(lib)

    def watched_files(self) -> list[Path]:
        return [Path(self.spec.path)]

    def call(self, request: Request) -> Response:
        """Call `handle_request` through the C extension; a bad response is a HandlerError."""
        try:
            status, reason, body, raw_headers, typed, elapsed, prealloc, alloc = _native.call(
                self._handle_request,
                self._deinit,
                request.raw_method,
                request.raw_target,
                request.raw_headers,
                request.body,
                self._zig_init,
                self._marker,
            )
        except _native.ResponseError as exc:
            raise HandlerError(f"{self.spec.path}: {exc}") from None
        response = Response(body, status, reason=reason)
        response.raw_headers = raw_headers
        response.typed = typed
        response.elapsed = elapsed
        response.prealloc = prealloc
        response.alloc = alloc
        return response


def _address(function: ctypes._CFuncPtr) -> int:
    """The address of an exported function, as `flexilib._native.call` takes it."""
    return ctypes.cast(function, ctypes.c_void_p).value or 0


def _dlclose(lib: ctypes.CDLL) -> None:
    """Unload a version that has drained, so fifty reloads do not keep fifty copies mapped."""
    import _ctypes

    _ctypes.dlclose(lib._handle)
