"""/metrics: the totals in the Prometheus text format (0.0.4), written here.

The numbers are counted in plain Python by the workers and added up by the
master (`aggregate.py`); this module only writes the format: a few lines
per metric family, labels sorted and escaped as the format asks. It used
`prometheus_client` for that, whose import (70 modules: its HTTP server,
email, hashlib, ...) made the first scrape add 4.8 MB to the master's PSS
for good (measured: master + 1 worker, 22.8 -> 27.6 MB). The output is
the same lines but for large numbers, which it wrote in Go's exponent form
(`2e+07`) and this writes as Python does (`20000000.0`); both parse alike
(tests/unit/test_admin_totals.py reads it back with prometheus_client's
own parser, a test dependency only). A scrape costs the master a few hundred
microseconds, and a request costs a worker nothing more than its counting.
"""

from __future__ import annotations

from collections.abc import Iterable

from flexilib.admin.aggregate import Snapshot
from flexilib.stats import BOUNDS, process_sample

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: one sample: name suffix (`_bucket`, `_sum`, ... or ""), labels, value
Sample = tuple[str, dict[str, str], float]


class _Page:
    """The exposition text, family by family."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> None:
        """`# HELP`, `# TYPE` and the samples; a counter's name gets its `_total`."""
        if kind == "counter":
            name += "_total"
        help_text = help_text.replace("\\", r"\\").replace("\n", r"\n")
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for suffix, labels, value in samples:
            self.lines.append(f"{name}{suffix}{_labels(labels)} {_number(value)}")

    def text(self) -> bytes:
        return "".join(line + "\n" for line in self.lines).encode()


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    pairs = ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(labels.items()))
    return "{" + pairs + "}"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if value == float("-inf"):
        return "-Inf"
    if value != value:
        return "NaN"
    return repr(float(value))


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _durations(snap: Snapshot) -> Iterable[Sample]:
    for route in snap.routes:
        if not route.requests:
            continue
        running = 0
        for bound, count in zip((*BOUNDS, float("inf")), route.buckets, strict=True):
            running += count
            yield "_bucket", {"route": route.key, "le": _le(bound)}, running
        yield "_count", {"route": route.key}, running
        yield "_sum", {"route": route.key}, route.seconds


def render(snapshot: Snapshot, version: str) -> bytes:
    """The exposition text of one snapshot."""
    snap = snapshot
    page = _Page()
    page.family(
        "flexilib_requests",
        "counter",
        "Requests answered, by route (the proxy.ini KEY; - when none matched), kind and status.",
        (
            ("", {"route": r.key, "kind": r.kind, "code": str(code)}, count)
            for r in snap.routes
            for code, count in sorted(r.codes.items())
        ),
    )
    page.family(
        "flexilib_request_duration_seconds",
        "histogram",
        "Time from a request's turn on its connection to the last byte of its answer.",
        _durations(snap),
    )
    page.family(
        "flexilib_requests_in_flight",
        "gauge",
        "Requests running on the route's handler or waiting for it to load.",
        (("", {"route": r.key}, sum(r.in_flight.values())) for r in snap.routes if r.key != "-"),
    )
    page.family(
        "flexilib_handler_loads",
        "counter",
        "Handler versions loaded (first loads and hot reloads) or failed to load, per worker.",
        (
            ("", {"route": route, "result": result}, count)
            for (route, result), count in sorted(snap.loads.items())
        ),
    )
    page.family(
        "flexilib_config_reloads",
        "counter",
        "Config reloads (SIGHUP): ok, or error (rejected; the old config keeps serving).",
        (("", {"result": r}, snap.reloads.get(r, 0)) for r in ("ok", "error")),
    )
    page.family(
        "flexilib_worker_restarts",
        "counter",
        "Workers replaced after they died or stopped answering.",
        [("", {}, snap.restarts)],
    )
    page.family(
        "flexilib_connections_open",
        "gauge",
        "Client connections open, over every worker.",
        [("", {}, sum(w.connections for w in snap.workers))],
    )
    page.family(
        "flexilib_upstream_requests",
        "counter",
        "Reverse-proxy attempts per upstream: ok (it answered), error, timeout.",
        (
            ("", {"upstream": upstream, "result": result}, count)
            for (upstream, result), count in sorted(snap.upstreams.items())
        ),
    )
    processes = [("master", process_sample())]
    processes += [(f"worker{w.number}", w.process) for w in snap.workers]
    for field, name, kind, help_text in (
        (0, "process_resident_memory_bytes", "gauge", "Resident memory size."),
        (1, "process_cpu_seconds", "counter", "User and system CPU time."),
        (2, "process_open_fds", "gauge", "Open file descriptors."),
    ):
        page.family(
            name, kind, help_text, (("", {"process": p}, fig[field]) for p, fig in processes)
        )
    page.family(
        "flexilib_build_info",
        "gauge",
        "The running flexilib's version.",
        [("", {"version": version}, 1)],
    )
    return page.text()
