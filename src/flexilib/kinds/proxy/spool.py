"""A response body read ahead of a slow client: memory first, then a temporary file.

nginx's `proxy_buffering`: the proxy reads the upstream's response as fast
as the upstream sends it and the client gets it at its own pace, so an
upstream connection is held for as long as the upstream takes, not the
client. Pieces wait in memory up to `memory` bytes, then in an unlinked
temporary file (gone with the process, whatever happens) up to `disk`
bytes; once both are full, `put()` reports it and the reader waits
(`room()`) for the client, as without a spool. Order is kept: while the file
holds anything, new pieces go after it. File I/O runs on the event loop,
as nginx's does: writes of this size go to the page cache.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import deque
from typing import BinaryIO

__all__ = ["Spool"]

_READ = 64 * 1024  # read back from the file this much at a time


class Spool:
    """One response's pieces between the upstream (`put`, `end`) and the client (`get`)."""

    __slots__ = ("_loop", "_memory", "_disk", "_chunks", "_held", "_file", "_written", "_read")
    __slots__ += ("_ended", "_getter", "_putter")

    def __init__(self, loop: asyncio.AbstractEventLoop, memory: int, disk: int) -> None:
        self._loop = loop
        self._memory = memory
        self._disk = disk
        self._chunks: deque[bytes] = deque()
        self._held = 0  # bytes in `_chunks`
        self._file: BinaryIO | None = None
        self._written = 0  # file offsets: what was written, what was read back
        self._read = 0
        self._ended = False
        self._getter: asyncio.Future | None = None
        self._putter: asyncio.Future | None = None

    @property
    def pending(self) -> int:
        """Bytes taken from the upstream and not yet given to the client."""
        return self._held + self._written - self._read

    def full(self) -> bool:
        if self._disk:
            return self._written - self._read >= self._disk
        return self._held >= self._memory

    def put(self, data: bytes) -> None:
        """Keep `data` (even when full: over by one piece; the reader then waits in `room()`)."""
        if self._written == self._read and self._held + len(data) <= self._memory or not self._disk:
            self._chunks.append(data)
            self._held += len(data)
        else:  # behind what the file holds, to keep the order
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="flexilib-proxy-")
            self._file.seek(self._written)
            self._file.write(data)
            self._written += len(data)
        _wake(self._getter)

    def end(self) -> None:
        """The upstream's response is complete: `get()` returns None after the last piece."""
        self._ended = True
        _wake(self._getter)

    async def room(self) -> None:
        """Wait until the client has taken enough for `put()` to fit again."""
        while self.full() and not self._ended:
            self._putter = self._loop.create_future()
            await self._putter

    async def get(self) -> bytes | None:
        """The next piece for the client; None once the response is all given."""
        while True:
            if self._chunks:
                data = self._chunks.popleft()
                self._held -= len(data)
                break
            if self._read < self._written:
                self._file.seek(self._read)
                data = self._file.read(min(_READ, self._written - self._read))
                self._read += len(data)
                if self._read == self._written:
                    self._read = self._written = 0
                    self._file.truncate(0)
                break
            if self._ended:
                return None
            self._getter = self._loop.create_future()
            await self._getter
        _wake(self._putter)
        return data

    def close(self) -> None:
        self._ended = True
        self._chunks.clear()
        if self._file is not None:
            self._file.close()
            self._file = None
        _wake(self._getter)
        _wake(self._putter)


def _wake(waiter: asyncio.Future | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
