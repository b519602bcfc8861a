"""The body half of Request and Response: bytes that can be read once.

On Cloudflare a body is a stream: reading it with `text()`, `json()`,
`bytes()` or `buffer()` uses it up, and a second read raises
`OSError("Body already used")` (the SDK's spelling). flexilib holds the whole
body in memory, but keeps that rule so a worker that would fail there fails
here too. A missing body (`None`, as for a GET) reads as empty and is never
"used".
"""

from __future__ import annotations

import json as _json
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["ArrayBuffer", "Body", "ReadableStream"]


class ArrayBuffer(bytes):
    """What `buffer()` resolves to: the bytes, plus the spellings code uses on the JS one.

    On Cloudflare `buffer()` gives a proxied JS `ArrayBuffer`, read with
    `.to_bytes()` or `.byteLength`; both work here, and it is also plain bytes.
    """

    @property
    def byteLength(self) -> int:  # the JS property name
        return len(self)

    def to_bytes(self) -> bytes:
        return bytes(self)


class ReadableStream:
    """A body as `.body` exposes it: pass it to `Response(...)`, or `async for` its chunks."""

    __slots__ = ("_owner",)

    def __init__(self, owner: Body) -> None:
        self._owner = owner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        data = self._owner._consume()
        if data:
            yield data

    def _read_all(self) -> bytes:
        return self._owner._consume()


class Body:
    """Read-once body access shared by `Request` and `Response`."""

    _body: bytes | None
    _used: bool

    def _init_body(self, data: bytes | None) -> None:
        self._body = data
        self._used = False

    def _consume(self) -> bytes:
        if self._body is None:
            return b""
        if self._used:
            raise OSError("Body already used")
        self._used = True
        return self._body

    @property
    def body(self) -> ReadableStream | None:
        """The body as a stream, or None when there is none (as `null` in JS)."""
        return None if self._body is None else ReadableStream(self)

    @property
    def body_used(self) -> bool:
        return self._used

    async def bytes(self) -> bytes:
        return self._consume()

    async def buffer(self) -> ArrayBuffer:
        return ArrayBuffer(self._consume())

    async def text(self) -> str:
        # TextDecoder, as the JS `text()` uses it: UTF-8, bad bytes replaced
        return self._consume().decode("utf-8", "replace")

    async def json(self, **kwargs: Any) -> Any:
        return _json.loads(await self.text(), **kwargs)
