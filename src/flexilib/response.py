"""The response object handlers return."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ["Response", "unavailable"]

HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]] | None


class Response:
    """A complete response: status, headers and a body held in memory.

    `headers` is a list of `(name, value)` strings; repeated names are kept
    (several `Set-Cookie`, say). `reason` overrides the standard reason
    phrase. `raw_headers` is for handler kinds that already hold header lines
    encoded and checked by the rules of `flexilib.http.headers`
    (`b"Name: value\\r\\n"...`), `typed` saying whether they hold a
    `Content-Type`; the writer sends them as they are.
    `prealloc` and `alloc` are the access log's memory figures (see README).
    """

    __slots__ = (
        "status",
        "headers",
        "body",
        "reason",
        "raw_headers",
        "typed",
        "prealloc",
        "alloc",
        "elapsed",
    )

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: HeaderInput = None,
        reason: str | None = None,
        content_type: str | None = None,
    ) -> None:
        self.body = body.encode() if isinstance(body, str) else bytes(body)
        self.status = status
        if headers is None:
            self.headers: list[tuple[str, str]] = []
        elif isinstance(headers, Mapping):
            self.headers = [(str(k), str(v)) for k, v in headers.items()]
        else:
            self.headers = [(str(k), str(v)) for k, v in headers]
        if content_type is not None:
            self.headers.append(("Content-Type", content_type))
        self.reason = reason
        self.raw_headers = b""
        self.typed = False
        # memory figures for the access log, filled by the handler kinds that know them
        self.prealloc = 0
        self.alloc = 0
        # seconds the handler's own code ran, when the kind can measure it without
        # GIL waits (native calls); 0.0 otherwise (see flexilib.runtime.dispatch)
        self.elapsed = 0.0

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)} bytes>"


def unavailable(text: bytes, retry_after: float) -> Response:
    """503 with `Retry-After` (whole seconds, rounded up, at least 1): a route that is
    busy or quarantined, which the client may try again later."""
    seconds = max(1, math.ceil(retry_after))
    return Response(text, 503, headers=[("Retry-After", str(seconds))])
