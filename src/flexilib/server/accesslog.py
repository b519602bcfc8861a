"""The request log: one line per request on standard output, the original's format or JSON.

    127.0.0.1:59940 - - "GET / HTTP/1.1" 200 ttfb 2000.420ms 11 ttlb 2000.568ms (pre-alloc: 1569, alloc: 4350)

With `--log-format json`, one object per line for log shippers (Loki,
Elasticsearch, CloudWatch) instead, with the route and worker added:

    {"time": "2026-11-30T11:36:21.042Z", "remote": "127.0.0.1:59940", "method": "GET", ...}

Lines are gathered and written with one `write` per event-loop turn (or
sooner once 64 KiB are waiting), so logging costs a format, not a syscall,
per request.
"""

from __future__ import annotations

import json
import os
import time

__all__ = ["AccessLog"]

_FLUSH_AT = 64 * 1024
_LINE = '%s - - "%s %s HTTP/%s" %d ttfb %.3fms %d ttlb %.3fms (pre-alloc: %d, alloc: %d)\n'


class AccessLog:
    """Buffers formatted lines and writes them to a file descriptor in batches."""

    def __init__(self, loop, fd: int = 1, json_format: bool = False, worker: int = 0) -> None:
        self._loop = loop
        self._fd = fd
        self._json = json_format
        self._worker = worker
        self._second = -1  # the whole second `_stamp` was made for (JSON)
        self._stamp = ""
        self._lines: list[str] = []
        self._size = 0
        self._scheduled = False

    def log(
        self,
        client: str,
        method: bytes,
        target: bytes,
        version: str,
        status: int,
        ttfb: float,
        size: int,
        ttlb: float,
        prealloc: int,
        alloc: int,
        route: str = "-",
        kind: str = "-",
    ) -> None:
        """Record one request; times are in seconds; method and target as received."""
        if self._json:
            line = self._json_line(
                client,
                method,
                target,
                version,
                status,
                ttfb,
                size,
                ttlb,
                prealloc,
                alloc,
                route,
                kind,
            )
        else:
            line = _LINE % (
                client,
                method.decode("latin-1"),
                target.decode("latin-1"),
                version,
                status,
                ttfb * 1000,
                size,
                ttlb * 1000,
                prealloc,
                alloc,
            )
        self._lines.append(line)
        self._size += len(line)
        if self._size >= _FLUSH_AT:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def _json_line(
        self,
        client: str,
        method: bytes,
        target: bytes,
        version: str,
        status: int,
        ttfb: float,
        size: int,
        ttlb: float,
        prealloc: int,
        alloc: int,
        route: str,
        kind: str,
    ) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:  # the date part changes once a second: format it then
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        record = {
            "time": f"{self._stamp}.{int((now - second) * 1000):03d}Z",
            "remote": client,
            "method": method.decode("latin-1"),
            "target": target.decode("latin-1"),
            "protocol": f"HTTP/{version}",
            "status": status,
            "bytes": size,
            "ttfb_ms": round(ttfb * 1000, 3),
            "ttlb_ms": round(ttlb * 1000, 3),
            "prealloc": prealloc,
            "alloc": alloc,
            "route": route,
            "kind": kind,
            "worker": self._worker,
        }
        return json.dumps(record) + "\n"

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        data = "".join(self._lines).encode("utf-8", "backslashreplace")
        self._lines.clear()
        self._size = 0
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except BlockingIOError:
            pass  # a non-blocking stdout that is full: drop rather than stall the loop
        except OSError:
            pass  # stdout closed: keep serving
