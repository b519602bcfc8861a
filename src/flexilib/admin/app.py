"""The admin endpoints: /healthz, /readyz, /metrics, /status and the status page at /.

Answered by the master (`listener.py`) from its totals
(`aggregate.Totals`). It never touches a handler, so a stuck or crashing
handler cannot stop it from answering. `prometheus_client` (9 MB once
imported) is imported on the first /metrics request, not before: a server
nobody scrapes does not pay for it.
"""

from __future__ import annotations

import json
import time

from flexilib import __version__
from flexilib.admin.aggregate import Snapshot, Totals, quantile
from flexilib.admin.page import PAGE
from flexilib.response import Response

__all__ = ["AdminApp", "status_document"]

_TEXT = "text/plain; charset=utf-8"


def _iso(when: float) -> str | None:
    if not when:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1000):03d}Z"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def status_document(snap: Snapshot) -> dict:
    """/status: what the server runs and how it is doing, as one JSON object."""
    reload = snap.last_reload
    routes = []
    for route in snap.routes:
        routes.append(
            {
                "key": route.key,
                "target": route.target if route.key != "-" else "(no route matched)",
                "kind": route.kind,
                "version": route.version,
                "loaded_at": _iso(route.loaded_at),
                "requests": route.requests,
                "errors": route.errors,
                "p50_ms": _ms(quantile(route.buckets, 0.5)),
                "p99_ms": _ms(quantile(route.buckets, 0.99)),
                "in_flight": sum(route.in_flight.values()),
            }
        )
    reason = snap.readiness()
    return {
        "version": __version__,
        "started": _iso(snap.started),
        "uptime_s": round(time.time() - snap.started, 3),
        "ready": reason is None,
        "reason": reason,
        "config": {
            "path": snap.config,
            "generation": snap.generation,
            "last_reload": None
            if reload is None
            else {
                "time": _iso(reload["time"]),
                "result": reload["result"],
                "error": reload["error"],
            },
            "reloads": dict(snap.reloads),
        },
        "workers": [
            {
                "number": w.number,
                "pid": w.pid,
                "started": _iso(w.started),
                "restarts": w.restarts,
                "requests": w.requests,
                "serving": w.serving == snap.generation,
                "connections": w.connections,
                "rss_bytes": w.process[0],
            }
            for w in snap.workers
        ],
        "worker_restarts": snap.restarts,
        "routes": routes,
    }


class AdminApp:
    """Every answer is made at once from the totals; no access log (probes would drown it)."""

    def __init__(self, totals: Totals) -> None:
        self.totals = totals

    def answer(self, method: bytes, target: bytes) -> Response:
        """The response to one admin request (see README "Operating flexilib")."""
        path = target.split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return Response("only GET and HEAD\n", 405, {"Allow": "GET, HEAD"}, content_type=_TEXT)
        if path == b"/healthz":  # the master answers, so it is alive; is a worker?
            if self.totals.alive():
                return Response("ok\n", content_type=_TEXT)
            return Response("no worker alive\n", 503, content_type=_TEXT)
        if path == b"/readyz":
            reason = self.totals.snapshot().readiness()
            if reason is None:
                return Response("ready\n", content_type=_TEXT)
            return Response(f"{reason}\n", 503, content_type=_TEXT)
        if path == b"/metrics":
            from flexilib.admin import metrics

            body = metrics.render(self.totals.snapshot(), __version__)
            return Response(body, content_type=metrics.CONTENT_TYPE)
        if path == b"/status":
            body = json.dumps(status_document(self.totals.snapshot()), indent=1)
            return Response(body + "\n", content_type="application/json")
        if path in (b"/", b"/index.html"):
            return Response(PAGE, content_type="text/html; charset=utf-8")
        return Response(
            "not found: try /healthz /readyz /metrics /status /\n", 404, content_type=_TEXT
        )
