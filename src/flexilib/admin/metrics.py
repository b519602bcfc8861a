"""/metrics: the totals in the Prometheus text format (0.0.4), written by `prometheus_client`.

The numbers are counted in plain Python by the workers and added up by the
master (`aggregate.py`); `prometheus_client` only writes the format, from a
custom collector that turns one `Snapshot` into metric families. So a
scrape costs the master a few hundred microseconds, and a request costs a
worker nothing more than its counting.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from flexilib.admin.aggregate import Snapshot
from flexilib.stats import BOUNDS, process_sample

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Collector:
    def __init__(self, snapshot: Snapshot, version: str) -> None:
        self.snapshot = snapshot
        self.version = version

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        requests = CounterMetricFamily(
            "flexilib_requests",
            "Requests answered, by route (the proxy.ini KEY; - when none matched), kind and status.",
            labels=["route", "kind", "code"],
        )
        duration = HistogramMetricFamily(
            "flexilib_request_duration_seconds",
            "Time from a request's turn on its connection to the last byte of its answer.",
            labels=["route"],
        )
        in_flight = GaugeMetricFamily(
            "flexilib_requests_in_flight",
            "Requests running on the route's handler or waiting for it to load.",
            labels=["route"],
        )
        for route in snap.routes:
            for code, count in sorted(route.codes.items()):
                requests.add_metric([route.key, route.kind, str(code)], count)
            if route.requests:
                cumulative, running = [], 0
                for bound, count in zip((*BOUNDS, float("inf")), route.buckets, strict=True):
                    running += count
                    cumulative.append((_le(bound), running))
                duration.add_metric([route.key], cumulative, route.seconds)
            if route.key != "-":
                in_flight.add_metric([route.key], sum(route.in_flight.values()))
        yield requests
        yield duration
        yield in_flight

        loads = CounterMetricFamily(
            "flexilib_handler_loads",
            "Handler versions loaded (first loads and hot reloads) or failed to load, per worker.",
            labels=["route", "result"],
        )
        for (route, result), count in sorted(snap.loads.items()):
            loads.add_metric([route, result], count)
        yield loads

        reloads = CounterMetricFamily(
            "flexilib_config_reloads",
            "Config reloads (SIGHUP): ok, or error (rejected; the old config keeps serving).",
            labels=["result"],
        )
        for result in ("ok", "error"):
            reloads.add_metric([result], snap.reloads.get(result, 0))
        yield reloads

        yield CounterMetricFamily(
            "flexilib_worker_restarts",
            "Workers replaced after they died or stopped answering.",
            value=snap.restarts,
        )
        yield GaugeMetricFamily(
            "flexilib_connections_open",
            "Client connections open, over every worker.",
            value=sum(w.connections for w in snap.workers),
        )
        upstreams = CounterMetricFamily(
            "flexilib_upstream_requests",
            "Reverse-proxy attempts per upstream: ok (it answered), error, timeout.",
            labels=["upstream", "result"],
        )
        for (upstream, result), count in sorted(snap.upstreams.items()):
            upstreams.add_metric([upstream, result], count)
        yield upstreams

        processes = [("master", process_sample())]
        processes += [(f"worker{w.number}", w.process) for w in snap.workers]
        rss = GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory size.", labels=["process"]
        )
        cpu = CounterMetricFamily(
            "process_cpu_seconds", "User and system CPU time.", labels=["process"]
        )
        fds = GaugeMetricFamily("process_open_fds", "Open file descriptors.", labels=["process"])
        for name, (memory, seconds, files) in processes:
            rss.add_metric([name], memory)
            cpu.add_metric([name], seconds)
            fds.add_metric([name], files)
        yield rss
        yield cpu
        yield fds

        info = GaugeMetricFamily(
            "flexilib_build_info", "The running flexilib's version.", labels=["version"]
        )
        info.add_metric([self.version], 1)
        yield info


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def render(snapshot: Snapshot, version: str) -> bytes:
    """The exposition text of one snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(snapshot, version))
    return generate_latest(registry)
