"""The master's totals: every worker's reports added up, kept when a worker dies.

Workers send deltas once a tick (`flexilib.server.worker.Worker.report`);
the master's loop adds them here, and the admin listener (the same loop, so
no lock) answers /metrics, /status and /readyz from a copy (`snapshot()`).
A counter only ever grows: what a killed worker reported before it died
stays counted (its last tick, under a second, is what is lost).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from flexilib.config import Rule
from flexilib.stats import BOUNDS

__all__ = ["RouteTotals", "Snapshot", "Totals", "WorkerRecord", "quantile"]


@dataclass
class RouteTotals:
    """One route (rule key and kind) since the server started, across workers."""

    key: str
    kind: str
    target: str = ""
    codes: Counter[int] = field(default_factory=Counter)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS) + 1))
    seconds: float = 0.0  # the ttlb histogram's sum
    version: int = 0  # the newest handler version a worker reports loaded
    loaded_at: float = 0.0
    in_flight: dict[int, int] = field(default_factory=dict)  # by worker pid

    @property
    def requests(self) -> int:
        return sum(self.codes.values())

    @property
    def errors(self) -> int:
        """Answers with a 5xx status: the server's or the handler's failures."""
        return sum(n for code, n in self.codes.items() if code >= 500)


@dataclass
class WorkerRecord:
    number: int
    pid: int
    started: float  # wall clock
    restarts: int  # how many times this worker number was replaced before
    requests: int = 0
    serving: int | None = None  # the config generation it confirmed serving
    connections: int = 0
    process: tuple[int, float, int] = (0, 0.0, 0)  # rss bytes, cpu seconds, open fds


@dataclass
class Snapshot:
    """The totals as one answer of the admin listener sees them."""

    started: float
    config: str
    generation: int
    workers_wanted: int
    stopping: bool
    workers: list[WorkerRecord]
    routes: list[RouteTotals]
    restarts: int
    reloads: Counter[str]
    last_reload: dict | None
    loads: Counter[tuple[str, str]]
    upstreams: Counter[tuple[str, str]]

    def readiness(self) -> str | None:
        """None when ready; else the one-line reason /readyz gives."""
        if self.stopping:
            return "stopping: draining requests in flight"
        if not self.workers:
            return "no worker alive"
        serving = sum(1 for w in self.workers if w.serving == self.generation)
        if serving < self.workers_wanted:
            return (
                f"starting: {serving} of {self.workers_wanted} worker(s) serving"
                f" config generation {self.generation}"
            )
        return None


def quantile(buckets: list[int], q: float) -> float | None:
    """The `q` quantile of a histogram over `BOUNDS`, interpolated inside its bucket.

    Prometheus's `histogram_quantile` does the same; None for an empty histogram.
    """
    count = sum(buckets)
    if not count:
        return None
    rank = q * count
    seen = 0
    for index, n in enumerate(buckets):
        if n and seen + n >= rank:
            if index == len(BOUNDS):  # above the last bound: all that can be said
                return BOUNDS[-1]
            low = BOUNDS[index - 1] if index else 0.0
            return low + (BOUNDS[index] - low) * (rank - seen) / n
        seen += n
    return BOUNDS[-1]


class Totals:
    """Everything the workers reported, and the master's own events (starts, reloads, stop)."""

    def __init__(self, config: str, workers_wanted: int, rules: list[Rule]) -> None:
        self.started = time.time()
        self.config = config
        self.workers_wanted = workers_wanted
        self.generation = 0
        self.stopping = False
        self.workers: dict[int, WorkerRecord] = {}
        self.routes: dict[tuple[str, str], RouteTotals] = {}
        self.restarts = 0
        self._starts: Counter[int] = Counter()  # worker number -> times started
        self.reloads: Counter[str] = Counter()
        self.last_reload: dict | None = None
        self.loads: Counter[tuple[str, str]] = Counter()
        self.upstreams: Counter[tuple[str, str]] = Counter()
        self._rules(rules)

    def _rules(self, rules: list[Rule]) -> None:
        """The config's routes, in its order (routes that left it keep their counts)."""
        order = {}
        for rule in rules:
            name = (rule.key, rule.spec.kind)
            route = self.routes.pop(name, None) or RouteTotals(*name)
            route.target = rule.spec.target
            order[name] = route
        self.routes = {**order, **self.routes}

    def _route(self, key: str, kind: str) -> RouteTotals:
        route = self.routes.get((key, kind))
        if route is None:
            route = self.routes[(key, kind)] = RouteTotals(key, kind)
        return route

    # -- from the master's loop ------------------------------------------------------
    def worker_started(self, number: int, pid: int) -> None:
        """A worker was forked; a number started before counts as a restart."""
        restarts = self._starts[number]
        self._starts[number] += 1
        self.restarts += 1 if restarts else 0
        self.workers[pid] = WorkerRecord(number, pid, time.time(), restarts)

    def worker_gone(self, pid: int) -> None:
        """A worker was reaped: its counts stay, its gauges (in flight, connections) go."""
        gone = self.workers.pop(pid, None)
        if gone is not None:
            for route in self.routes.values():
                route.in_flight.pop(pid, None)

    def reloaded(self, rules: list[Rule] | None, error: str | None) -> None:
        """A SIGHUP's outcome: new rules (a new generation), or the error that kept the old."""
        result = "error" if error is not None else "ok"
        self.reloads[result] += 1
        self.last_reload = {"time": time.time(), "result": result, "error": error}
        if rules is not None:
            self.generation += 1
            self._rules(rules)

    def stop(self) -> None:
        """SIGTERM/SIGINT: not ready any more, while the workers drain."""
        self.stopping = True

    def report(self, pid: int, message: tuple) -> None:
        """One message from worker `pid` (see `flexilib.server.worker`)."""
        kind, payload = message
        worker = self.workers.get(pid)
        if worker is None:
            return
        if kind == "serving":
            worker.serving = payload
        elif kind == "stats":
            self._add(worker, payload)

    def _add(self, worker: WorkerRecord, stats: dict) -> None:
        for key, kind, codes, buckets, seconds in stats["routes"]:
            route = self._route(key, kind)
            route.codes.update(codes)
            route.buckets = [a + b for a, b in zip(route.buckets, buckets, strict=True)]
            route.seconds += seconds
            worker.requests += sum(codes.values())
        for key, kind, target, version, loaded_at, ok, failed, busy in stats["handlers"]:
            route = self._route(key, kind)
            route.target = route.target or target
            if loaded_at > route.loaded_at:
                route.version, route.loaded_at = version, loaded_at
            route.in_flight[worker.pid] = busy
            if ok:
                self.loads[(key, "ok")] += ok
            if failed:
                self.loads[(key, "error")] += failed
        self.upstreams.update(stats["upstreams"])
        worker.connections = stats["connections"]
        worker.process = stats["process"]

    # -- for the admin listener -----------------------------------------------------
    def alive(self) -> int:
        """Worker processes running (cheap: /healthz asks it)."""
        return len(self.workers)

    def snapshot(self) -> Snapshot:
        """The view one answer is made from (it shares the totals' objects: same thread)."""
        return Snapshot(
            self.started,
            self.config,
            self.generation,
            self.workers_wanted,
            self.stopping,
            sorted(self.workers.values(), key=lambda w: w.number),
            list(self.routes.values()),
            self.restarts,
            self.reloads,
            self.last_reload,
            self.loads,
            self.upstreams,
        )
