"""The admin listener: served by the master's own selector loop, parsed by httptools.

Why not an asyncio loop with `flexilib.http.protocol` (in a thread of the
master, or as the master's loop): measured on the bench machine, importing
asyncio and the protocol adds 9 MB to the master (asyncio pulls in `ssl`
alone for 4 MB), and the issue allows 3 MB for all of observability. This
listener adds 0.5 MB (httptools) and no thread, so no lock, and forking a
worker stays forking a single-threaded process. It needs little: probes and
scrapes are a few requests a second at most, each answered at once from the
totals, so every connection carries one request and closes
(`Connection: close`), with tight limits so the port cannot hold memory.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable
from functools import partial

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from flexilib.http.status import status_line
from flexilib.response import Response

__all__ = ["AdminListener", "bind", "encode"]

MAX_CONNECTIONS = 64
MAX_REQUEST_BYTES = 8192  # request line and headers; admin requests have no body
TIMEOUT = 10.0  # seconds for a connection to send its request and take the answer


def bind(host: str, port: int) -> socket.socket:
    """The admin socket, listening (OSError if it cannot)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class _Connection:
    """One admin connection: its request as httptools parses it, then its answer going out."""

    __slots__ = ("sock", "parser", "method", "url", "size", "complete", "out", "deadline")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = HttpRequestParser(self)
        self.method = b""
        self.url = b""
        self.size = 0
        self.complete = False
        self.out = b""
        self.deadline = time.monotonic() + TIMEOUT

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        self.method = self.parser.get_method()
        self.complete = True


def encode(response: Response, head_only: bool) -> bytes:
    """A whole HTTP/1.1 response that closes its connection."""
    lines = [status_line(response.status, response.reason)]
    lines += [f"{name}: {value}\r\n".encode("latin-1") for name, value in response.headers]
    lines.append(b"Content-Length: %d\r\n" % len(response.body))
    lines.append(b"Cache-Control: no-store\r\nConnection: close\r\n\r\n")
    if not head_only:
        lines.append(response.body)
    return b"".join(lines)


class AdminListener:
    """Accepts on `sock` and answers each request with `answer(method, target)`."""

    def __init__(
        self,
        sock: socket.socket,
        answer: Callable[[bytes, bytes], Response],
        selector: selectors.BaseSelector,
    ) -> None:
        self.sock = sock
        self.answer = answer
        self.selector = selector
        self.open: set[_Connection] = set()
        selector.register(sock, selectors.EVENT_READ, self.accept)

    def accept(self) -> None:
        """New connections (the selector saw the listener readable); over the limit: closed."""
        while True:
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors, say: the next event tries again
                return
            if len(self.open) >= MAX_CONNECTIONS:
                sock.close()
                continue
            sock.setblocking(False)
            connection = _Connection(sock)
            self.open.add(connection)
            self.selector.register(sock, selectors.EVENT_READ, partial(self._read, connection))

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(connection)
            return
        connection.size += len(data)
        try:
            connection.parser.feed_data(data)
        except (HttpParserError, HttpParserUpgrade):
            self._reply(connection, Response("bad request\n", 400), False)
            return
        if connection.complete:
            head_only = connection.method == b"HEAD"
            self._reply(connection, self.answer(connection.method, connection.url), head_only)
        elif connection.size > MAX_REQUEST_BYTES:
            self._reply(connection, Response("request too large\n", 431), False)

    def _reply(self, connection: _Connection, response: Response, head_only: bool) -> None:
        connection.out = encode(response, head_only)
        self.selector.modify(
            connection.sock, selectors.EVENT_WRITE, partial(self._write, connection)
        )
        self._write(connection)

    def _write(self, connection: _Connection) -> None:
        try:
            sent = connection.sock.send(connection.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(connection)
            return
        connection.out = connection.out[sent:]
        if not connection.out:
            self._close(connection)

    def _close(self, connection: _Connection) -> None:
        if connection in self.open:
            self.open.discard(connection)
            self.selector.unregister(connection.sock)
            connection.sock.close()

    def expire(self) -> None:
        """Close connections past their deadline (the master calls this every loop turn)."""
        now = time.monotonic()
        for connection in [c for c in self.open if c.deadline < now]:
            self._close(connection)
