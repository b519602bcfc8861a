"""The open connections of one listener, and the one clock their timeouts run on.

Timeouts cost no timer per request: each connection keeps a deadline (and,
while its client reads nothing, a send deadline) on the coarse clock `now`, and `tick()`, once a second, closes the ones past it
and refreshes the `Date` header every response carries. `tick()` is called
by the owner of the listener (a worker's loop, a Runtime API endpoint).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from flexilib.settings import Limits

__all__ = ["Connections"]

SERVER_NAME = b"flexilib"
_DAYS = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun")
_MONTHS += (b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")


def http_date(seconds: float) -> bytes:
    """RFC 9110's IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), whatever the C locale.

    Formatted here rather than with `email.utils.formatdate`: importing the
    email package (with datetime, calendar, base64, quopri) cost every
    worker about 0.4 MB of its idle memory, for one line a second.
    """
    t = time.gmtime(seconds)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday],
        t.tm_mday,
        _MONTHS[t.tm_mon - 1],
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


class Timed(Protocol):
    """What the listener asks of a connection (implemented by `HttpProtocol`)."""

    deadline: float  # on the `now` clock; 0: none
    send_deadline: float  # the same, while the client reads nothing of what was written

    def timed_out(self) -> None: ...
    def close_idle(self) -> None: ...
    def abort(self) -> None: ...


class Connections:
    """Shared by every connection of a listener: limits, clock, `Date`, stopping."""

    __slots__ = ("limits", "open", "now", "default_headers", "stopping", "_clock")

    def __init__(self, limits: Limits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.open: set[Timed] = set()
        self._clock = clock  # the loop's `time`: the deadlines' time base
        self.now = clock()
        self.default_headers = b""
        self.stopping = False  # answer with `Connection: close`, close idle connections
        self._stamp()

    def _stamp(self) -> None:
        date = http_date(time.time())
        self.default_headers = b"Server: %s\r\nDate: %s\r\n" % (SERVER_NAME, date)

    def tick(self) -> None:
        """Once a second: the `Date` header, and connections past their deadline."""
        self.now = now = self._clock()
        self._stamp()
        late = [c for c in self.open if 0 < c.deadline < now or 0 < c.send_deadline < now]
        for connection in late:
            connection.timed_out()

    def stop(self) -> None:
        """Graceful stop: finish what is owed, close the rest."""
        self.stopping = True
        for connection in list(self.open):
            connection.close_idle()

    def abort_all(self) -> None:
        for connection in list(self.open):
            connection.abort()
