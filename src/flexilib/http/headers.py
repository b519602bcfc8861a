"""The one set of rules for what a handler may put in a response head, and its encoder.

Every handler kind's response passes these rules before a byte of it is
written: the Python kinds through `encode_headers` here, native libraries
through the same rules in C (`kinds/native/_native.c`, tested against one
table with every kind). A handler can never write raw bytes into the stream:

- a header name is an RFC 9110 token (letters, digits, ``!#$%&'*+-.^_`|~``);
- a header value or a reason phrase holds no CR, LF or NUL;
- the status is an integer in 100-999;
- `Content-Length`, `Transfer-Encoding` and `Connection` are dropped: the
  server frames the message itself;
- no `Content-Type`: `DEFAULT_CONTENT_TYPE` is added (by the writer, once,
  for every kind).
"""

from __future__ import annotations

import functools
import string

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "FRAMING",
    "InvalidResponse",
    "check_head",
    "encode_headers",
    "is_token",
]

DEFAULT_CONTENT_TYPE = b"Content-Type: text/plain\r\n"
#: headers the server writes itself, since it frames the message (lower case)
FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})
_TCHAR = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
_FORBIDDEN = ("\r", "\n", "\0")


class InvalidResponse(ValueError):
    """A response the server must not send; the client gets a 500 instead."""


def is_token(name: str) -> bool:
    """True when `name` is a valid header field name (an RFC 9110 token)."""
    return bool(name) and all(c in _TCHAR for c in name)


def check_head(status: object, reason: str | None) -> None:
    """InvalidResponse unless `status` is an int in 100-999 and `reason` is a safe phrase."""
    if type(status) is not int or not 100 <= status <= 999:
        raise InvalidResponse(f"status {status!r} is not an integer in 100-999")
    if reason is not None and any(c in reason for c in _FORBIDDEN):
        raise InvalidResponse("reason phrase holds CR, LF or NUL")


def encode_headers(headers: list[tuple[str, str]]) -> tuple[bytes, bool]:
    """Header pairs -> (`Name: value\\r\\n` lines, has Content-Type); InvalidResponse if unsafe.

    Handlers tend to send the same headers every time, so the encoding of a
    given list is remembered (a bounded cache keyed by its contents).
    """
    return _encode(tuple(headers))


@functools.lru_cache(maxsize=512)
def _encode(headers: tuple[tuple[str, str], ...]) -> tuple[bytes, bool]:
    lines = []
    typed = False
    for name, value in headers:
        if not is_token(name):
            raise InvalidResponse(f"response header name {name!r} is not a token")
        if any(c in value for c in _FORBIDDEN):
            raise InvalidResponse(f"response header {name!r}: value holds CR, LF or NUL")
        lower = name.lower()
        if lower in FRAMING:
            continue
        typed = typed or lower == "content-type"
        lines.append(f"{name}: {value}\r\n")
    try:
        return "".join(lines).encode("latin-1"), typed
    except UnicodeEncodeError:
        raise InvalidResponse("a response header is not latin-1 text") from None
