"""Native shared libraries through the original FlexiLib C interface.

The request is marshalled into a per-thread buffer (`RESPONSE_PREALLOCATION_KB`
big, as the original pre-allocates per thread): one `struct.pack` and one
`memmove` per request. The body is passed by pointer, never copied. The
response is copied out of the library's memory before `request_deinit` runs
on the same thread, so the library may free or reuse it at once.

Each version is `dlopen`ed from a private copy of the file, so a build tool
overwriting the live file in place can never change code that is running.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import struct
import sys
import tempfile
import threading
from pathlib import Path

from flexilib.handlers.base import Handler, HandlerError, HandlerLoadError, HandlerSpec
from flexilib.request import Request
from flexilib.response import Response

__all__ = ["NativeHandler", "set_preallocation"]

_REQUEST = struct.Struct("8Q")  # flexilib_request: 4 (pointer, length) pairs
_RESPONSE = struct.Struct("7Q")  # flexilib_response
_HEADER_SIZE = 32  # flexilib_header: 2 (pointer, length) pairs
_BAD_BYTES = re.compile(rb"[\r\n\x00]")
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})
_string_at = ctypes.string_at
_memmove = ctypes.memmove


def _bytes_data_offset() -> int:
    """Offset of a bytes object's data from its address, checked at import."""
    probe = b"flexilib-probe"
    offset = sys.getsizeof(b"") - 1
    if _string_at(id(probe) + offset, len(probe)) != probe:  # pragma: no cover - other VMs
        raise ImportError("unsupported Python object layout for native handlers")
    return offset


_DATA = _bytes_data_offset()
_prealloc_size = 8 * 1024
_private_dir: Path | None = None
_private_lock = threading.Lock()


def set_preallocation(kb: int) -> None:
    """Set the per-thread buffer size (RESPONSE_PREALLOCATION_KB) before serving."""
    global _prealloc_size
    _prealloc_size = max(1, kb) * 1024


class _Arena(threading.local):
    """The per-thread buffer a request is marshalled into."""

    def __init__(self) -> None:
        self.buffer = ctypes.create_string_buffer(_prealloc_size)
        self.size = _prealloc_size
        self.address = ctypes.addressof(self.buffer)


_arena = _Arena()


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


class NativeHandler(Handler):
    """A `.so` exporting `handle_request` (and optionally `request_deinit`)."""

    def __init__(self, spec: HandlerSpec) -> None:
        super().__init__(spec)
        self._lib: ctypes.CDLL | None = None
        self._handle_request = None
        self._deinit = None

    def load(self) -> None:
        path = self.spec.path
        if not os.path.isfile(path):
            raise HandlerLoadError(f"cannot load {path}: no such file")
        try:
            copy = _private_copy(path)
        except OSError as exc:
            raise HandlerLoadError(f"cannot load {path}: {exc.strerror or exc}") from None
        try:
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
        handle.argtypes = (ctypes.c_void_p,)
        handle.restype = ctypes.c_void_p
        deinit = getattr(lib, "request_deinit", None)
        if deinit is not None:
            deinit.argtypes = ()
            deinit.restype = None
        self._lib, self._handle_request, self._deinit = lib, handle, deinit

    def close(self) -> None:
        lib, self._lib = self._lib, None
        self._handle_request = self._deinit = None
        if lib is not None:
            _dlclose(lib)

    def watched_files(self) -> list[Path]:
        return [Path(self.spec.path)]

    def call(self, request: Request) -> Response:
        """Marshal, call `handle_request`, copy the response out, `request_deinit`."""
        arena = _arena
        headers = request.raw_headers
        count = len(headers)
        strings_at = _REQUEST.size + _HEADER_SIZE * count
        target, method, body = request.raw_target, request.raw_method, request.body
        parts = [target, method, b"\0"]
        for name, value in headers:
            parts.append(name)
            parts.append(value)
        size = strings_at + sum(map(len, parts))
        if size <= arena.size:
            buffer, base, prealloc, alloc = None, arena.address, size, 0
        else:  # larger than the thread's buffer: a one-off buffer for this request
            buffer = ctypes.create_string_buffer(size)
            base, prealloc, alloc = ctypes.addressof(buffer), 0, size
        fields = []
        at = base + strings_at + len(target) + len(method) + 1
        for name, value in headers:
            fields += (at, len(name), at + len(name), len(value))
            at += len(name) + len(value)
        blob = b"".join(
            [
                _REQUEST.pack(
                    base + strings_at,
                    len(target),
                    base + strings_at + len(target),
                    len(method),
                    id(body) + _DATA,
                    len(body),
                    base + _REQUEST.size,
                    count,
                ),
                struct.pack(f"{4 * count}Q", *fields),
                *parts,
            ]
        )
        _memmove(base, blob, len(blob))
        pointer = self._handle_request(base)
        del buffer
        try:
            response = self._read_response(pointer)
        finally:
            if self._deinit is not None:
                self._deinit()
        response.prealloc = prealloc
        response.alloc = alloc + len(response.body) + len(response.raw_headers)
        return response

    def _read_response(self, pointer: int | None) -> Response:
        path = self.spec.path
        if not pointer:
            raise HandlerError(f"{path}: handle_request returned NULL")
        ptr, length, hptr, hcount, status, rptr, rlen = _RESPONSE.unpack(
            _string_at(pointer, _RESPONSE.size)
        )
        if status == 0:
            status = 200
        elif not 100 <= status <= 999:
            raise HandlerError(f"{path}: status {status} outside 100-999")
        if (length and not ptr) or (hcount and not hptr) or (rlen and not rptr):
            raise HandlerError(f"{path}: response has a NULL pointer with a non-zero length")
        response = Response(_string_at(ptr, length) if length else b"", status)
        if rlen:
            reason = _string_at(rptr, rlen)
            if _BAD_BYTES.search(reason):
                raise HandlerError(f"{path}: reason phrase holds CR, LF or NUL")
            response.reason = reason.decode("latin-1")
        lines = []
        typed = False
        if hcount:
            raw = struct.unpack(f"{4 * hcount}Q", _string_at(hptr, _HEADER_SIZE * hcount))
            for i in range(0, 4 * hcount, 4):
                if (raw[i + 1] and not raw[i]) or (raw[i + 3] and not raw[i + 2]):
                    raise HandlerError(f"{path}: response header has a NULL pointer")
                name = _string_at(raw[i], raw[i + 1])
                value = _string_at(raw[i + 2], raw[i + 3])
                if not name or _BAD_BYTES.search(name) or _BAD_BYTES.search(value):
                    raise HandlerError(f"{path}: response header holds CR, LF or NUL")
                lower = name.lower()
                if lower in _FRAMING:
                    continue  # the server frames the message itself
                typed = typed or lower == b"content-type"
                lines.append(b"%s: %s\r\n" % (name, value))
        if not typed:
            lines.append(b"Content-Type: text/plain\r\n")
        response.raw_headers = b"".join(lines)
        return response


def _dlclose(lib: ctypes.CDLL) -> None:
    """Unload a version that has drained, so fifty reloads do not keep fifty copies mapped."""
    import _ctypes

    _ctypes.dlclose(lib._handle)
