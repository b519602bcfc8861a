"""Load shapes other than wrk's: idle connections, slow requests, single requests, swap polling."""

from __future__ import annotations

import asyncio
import http.client
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def _open_one(port: int) -> asyncio.StreamWriter | None:
    """Opens a connection, sends one request, reads the whole response; None on failure."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":", 1)[1]))
        return writer
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None


def hold_idle_connections(port: int, count: int, measure: Callable[[], T]) -> tuple[int, T]:
    """Opens `count` keep-alive connections (one answered request each), calls `measure`
    while they are all open and idle, then closes them. Returns (connections held, result)."""

    async def main() -> tuple[int, T]:
        writers: list[asyncio.StreamWriter] = []
        try:
            for start in range(0, count, 100):  # batches: stay inside the listen backlog
                batch = await asyncio.gather(
                    *(_open_one(port) for _ in range(min(100, count - start)))
                )
                writers += [w for w in batch if w is not None]
            await asyncio.sleep(0.2)  # let the server settle after the last answer
            return len(writers), measure()
        finally:
            for writer in writers:
                writer.close()

    return asyncio.run(main())


class SlowLoad:
    """`connections` threads, each looping keep-alive `GET /` with `x-slow: <ms>` until stopped."""

    def __init__(self, port: int, connections: int = 8, slow_ms: int = 1000) -> None:
        self.port = port
        self.slow_ms = slow_ms
        self.completed = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, daemon=True) for _ in range(connections)
        ]

    def _loop(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.slow_ms / 1e3 + 10)
        while not self._stop.is_set():
            try:
                conn.request("GET", "/", headers={"x-slow": str(self.slow_ms)})
                conn.getresponse().read()
                with self._lock:
                    self.completed += 1
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.failed += 1
                conn.close()
                self._stop.wait(0.1)
        conn.close()

    def __enter__(self) -> SlowLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.slow_ms / 1e3 + 15)


def single_request_ms(port: int, count: int) -> float:
    """Median of `count` sequential curl calls (curl's own time_total), in ms."""
    times = []
    for _ in range(count):
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{time_total}", f"http://127.0.0.1:{port}/"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        times.append(float(out.stdout) * 1e3)
    return statistics.median(times)


def sequential_ms(port: int, count: int) -> tuple[float, float]:
    """p50 and p99 (ms) of `count` back-to-back `GET /` on one keep-alive connection.

    The handler's own latency on an idle server, without curl's connection set-up
    (which `single_request_ms` includes); the first tenth is a warm-up.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    try:
        for _ in range(count + count // 10):
            started = time.perf_counter()
            conn.request("GET", "/")
            conn.getresponse().read()
            times.append((time.perf_counter() - started) * 1e3)
    finally:
        conn.close()
    times = sorted(times[count // 10 :])
    return times[len(times) // 2], times[int(len(times) * 0.99)]


def wait_for_body(port: int, path: str, expected: bytes, timeout: float = 10) -> float | None:
    """Requests `path` in a tight loop until the body equals `expected`.
    Returns the monotonic time it first did, or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        while time.monotonic() < deadline:
            try:
                conn.request("GET", path)
                body = conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn.close()  # a reload may close the connection: reconnect
                continue
            if body == expected:
                return time.monotonic()
        return None
    finally:
        conn.close()
