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

import ctypes
import os
import shutil
import tempfile
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


def set_preallocation(kb: int) -> None:
    """Set the per-thread buffer size (RESPONSE_PREALLOCATION_KB) before serving."""
    _native.set_preallocation(kb)


def set_crash_board(address: int, cells: int) -> None:
    """Where this process's threads mark the library they are calling (see server/scoreboard.py)."""
    _native.set_crash_board(address, cells)


def _private_copy(path: str) -> str:
    """Copy `path` to a per-process folder under a fresh name, for dlopen."""
    global _private_dir
    with _private_lock:
        if _private_dir is None:
            _private_dir = Path(tempfile.mkdtemp(prefix=f"flexilib-{os.getpid()}-"))
        fd, copy = tempfile.mkstemp(dir=_private_dir, suffix="-" + Path(path).name)
    with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
        shutil.copyfileobj(src, out)
    return copy


def remove_private_copies() -> None:
    """Remove this process's folder of private copies (each is unlinked once mapped)."""
    global _private_dir
    with _private_lock:
        if _private_dir is not None:
            shutil.rmtree(_private_dir, ignore_errors=True)
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
