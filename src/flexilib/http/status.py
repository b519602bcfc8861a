"""Status lines, prepared once."""

from __future__ import annotations

from http import HTTPStatus

__all__ = ["phrase", "status_line"]

_LINES: dict[int, bytes] = {
    s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus
}


_PHRASES: dict[int, str] = {s.value: s.phrase for s in HTTPStatus}


def phrase(status: int, default: str = "") -> str:
    """The standard reason phrase of `status`, or `default` for an unregistered one."""
    return _PHRASES.get(status, default)


def status_line(status: int, reason: str | None = None) -> bytes:
    """`HTTP/1.1 <status> <reason>\\r\\n`; `reason` must already be free of CR/LF."""
    if reason is None:
        line = _LINES.get(status)
        if line is not None:
            return line
        reason = "Unknown"
    return b"HTTP/1.1 %d %s\r\n" % (status, reason.encode("latin-1", "replace"))
