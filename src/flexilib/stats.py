"""Request counting in a worker: plain Python numbers per route, shipped to the master as deltas.

Every request adds to its route's `RouteStats` in `App.finished()`: a count
by status and one histogram bucket, found with `bisect` on `BOUNDS`. That
costs 0.28 µs, against 1.9 µs for one labelled `inc()` of
`prometheus_client` plus 2.5 µs for a labelled histogram `observe()`
(measured side by side), and it needs no lock: only the worker's event-loop
thread touches it. Once per tick the
worker takes what changed (`take()`) and sends it to the master, which adds
it to totals that outlive the worker (`flexilib.admin.aggregate`).

The reverse proxy counts its upstream attempts in `UPSTREAMS` the same way.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import Counter

__all__ = ["BOUNDS", "UPSTREAMS", "RouteStats", "process_sample"]

#: upper bounds (seconds, inclusive, as Prometheus's `le`) of the ttlb histogram: 100 µs .. 30 s
BOUNDS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

#: (upstream URL, result) -> attempts since the last tick; result: ok, error, timeout
UPSTREAMS: Counter[tuple[str, str]] = Counter()

_PAGE = os.sysconf("SC_PAGE_SIZE")


class RouteStats:
    """What one route served since the last `take()`."""

    __slots__ = ("key", "kind", "codes", "buckets", "total")

    def __init__(self, key: str, kind: str) -> None:
        self.key = key  # the rule's KEY as written in proxy.ini
        self.kind = kind
        self.codes: dict[int, int] = {}
        self.buckets = [0] * (len(BOUNDS) + 1)  # the last one: above 30 s
        self.total = 0.0  # seconds, the histogram's sum

    def record(self, status: int, seconds: float) -> None:
        """One request answered `status` after `seconds` (its time to last byte)."""
        codes = self.codes
        codes[status] = codes.get(status, 0) + 1
        self.buckets[bisect_left(BOUNDS, seconds)] += 1
        self.total += seconds

    def take(self) -> tuple[str, str, dict[int, int], list[int], float] | None:
        """What changed since the last call, reset to nothing; None when nothing did."""
        if not self.codes:
            return None
        delta = (self.key, self.kind, self.codes, self.buckets, self.total)
        self.codes = {}
        self.buckets = [0] * (len(BOUNDS) + 1)
        self.total = 0.0
        return delta


def process_sample() -> tuple[int, float, int]:
    """This process's resident memory (bytes), CPU time (seconds) and open file descriptors.

    Read from /proc/self like `prometheus_client`'s ProcessCollector, in ~30 µs once a tick.
    """
    with open("/proc/self/statm", "rb") as file:
        rss = int(file.read().split()[1]) * _PAGE
    times = os.times()
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = 0
    return rss, times.user + times.system, fds
