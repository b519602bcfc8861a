"""Counting, aggregation and rendering of the admin port, in process."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flexilib.admin.aggregate import Totals, quantile
from flexilib.admin.app import AdminApp
from flexilib.admin.listener import bind, encode
from flexilib.admin.metrics import render
from flexilib.config import parse_config
from flexilib.response import Response
from flexilib.server.accesslog import AccessLog
from flexilib.settings import SettingsError, resolve
from flexilib.stats import BOUNDS, RouteStats

RULES = parse_config("/api = python:/x/api.py\n/ = /x/libsample.so\n", Path("/x/proxy.ini"))


def stats_message(routes, handlers=(), upstreams=None, connections=0) -> tuple:
    return (
        "stats",
        {
            "routes": list(routes),
            "handlers": list(handlers),
            "upstreams": upstreams or {},
            "connections": connections,
            "process": (20_000_000, 1.5, 12),
        },
    )


def counted(key: str, kind: str, answers: list[tuple[int, float]]) -> tuple:
    stats = RouteStats(key, kind)
    for status, seconds in answers:
        stats.record(status, seconds)
    return stats.take()


def samples(text: str) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_route_stats_count_by_status_and_bucket_then_reset():
    stats = RouteStats("/", "native")
    assert stats.take() is None
    stats.record(200, 0.0001)  # on a bound: `le` is inclusive
    stats.record(200, 0.0003)
    stats.record(500, 45.0)  # above the last bound
    key, kind, codes, buckets, total = stats.take()
    assert (key, kind, codes) == ("/", "native", {200: 2, 500: 1})
    assert buckets[0] == 1 and buckets[BOUNDS.index(0.0005)] == 1 and buckets[-1] == 1
    assert sum(buckets) == 3 and total == pytest.approx(45.0004)
    assert stats.take() is None  # reset


def test_quantile_interpolates_inside_buckets():
    buckets = [0] * (len(BOUNDS) + 1)
    assert quantile(buckets, 0.5) is None
    buckets[BOUNDS.index(0.001)] = 100  # all between 0.5 ms and 1 ms
    assert quantile(buckets, 0.5) == pytest.approx(0.00075)
    assert quantile(buckets, 0.99) == pytest.approx(0.000995)
    buckets[-1] = 100  # half above 30 s: the p99 is only known to be past the last bound
    assert quantile(buckets, 0.99) == BOUNDS[-1]


def test_totals_keep_what_a_dead_worker_reported():
    totals = Totals("/x/proxy.ini", 2, RULES)
    totals.worker_started(0, 100)
    totals.worker_started(1, 101)
    totals.report(100, stats_message([counted("/", "native", [(200, 0.001)] * 5)]))
    totals.report(101, stats_message([counted("/", "native", [(200, 0.002), (503, 0.1)])]))
    totals.worker_gone(100)  # killed; its replacement starts
    totals.worker_started(0, 102)
    totals.report(102, stats_message([counted("/api", "python", [(200, 0.01)])]))
    totals.report(999, stats_message([counted("/", "native", [(200, 1.0)])]))  # unknown: ignored

    snap = totals.snapshot()
    routes = {r.key: r for r in snap.routes}
    assert [r.key for r in snap.routes] == ["/api", "/"]
    assert routes["/"].codes == {200: 6, 503: 1} and routes["/"].errors == 1
    assert routes["/api"].requests == 1
    assert sum(routes["/"].buckets) == 7
    assert snap.restarts == 1
    assert [(w.number, w.pid, w.restarts) for w in snap.workers] == [(0, 102, 1), (1, 101, 0)]
    assert {w.pid: w.requests for w in snap.workers} == {102: 1, 101: 2}


def test_readiness_reasons():
    totals = Totals("/x/proxy.ini", 2, RULES)
    assert totals.snapshot().readiness() == "no worker alive"
    totals.worker_started(0, 100)
    totals.worker_started(1, 101)
    totals.report(100, ("serving", 0))
    assert totals.snapshot().readiness() == (
        "starting: 1 of 2 worker(s) serving config generation 0"
    )
    totals.report(101, ("serving", 0))
    assert totals.snapshot().readiness() is None
    totals.reloaded(None, "proxy.ini:3: bad line")  # rejected: still ready
    assert totals.snapshot().readiness() is None
    totals.reloaded(RULES, None)  # accepted: ready again once both serve generation 1
    assert totals.snapshot().readiness().startswith("starting: 0 of 2")
    totals.report(100, ("serving", 1))
    totals.report(101, ("serving", 1))
    assert totals.snapshot().readiness() is None
    totals.stop()
    assert totals.snapshot().readiness() == "stopping: draining requests in flight"


def test_metrics_render_the_totals_in_the_prometheus_format():
    totals = Totals("/x/proxy.ini", 1, RULES)
    totals.worker_started(0, 100)
    handlers = [("/", "native", "/x/libsample.so", 2, 1e9, 2, 1, 3)]
    upstreams = {("http://10.0.0.1:80", "ok"): 4, ("http://10.0.0.1:80", "timeout"): 1}
    routes = [counted("/", "native", [(200, 0.0002), (200, 0.004), (500, 0.2)])]
    totals.report(100, stats_message(routes, handlers, upstreams, connections=7))
    totals.reloaded(None, "bad")
    found = samples(render(totals.snapshot(), "9.9.9").decode())

    def value(name: str, **labels: str) -> float:
        return found[(name, tuple(sorted(labels.items())))]

    assert value("flexilib_requests_total", route="/", kind="native", code="200") == 2
    assert value("flexilib_requests_total", route="/", kind="native", code="500") == 1
    assert value("flexilib_request_duration_seconds_bucket", route="/", le="0.0001") == 0
    assert value("flexilib_request_duration_seconds_bucket", route="/", le="0.00025") == 1
    assert value("flexilib_request_duration_seconds_bucket", route="/", le="0.005") == 2
    assert value("flexilib_request_duration_seconds_bucket", route="/", le="+Inf") == 3
    assert value("flexilib_request_duration_seconds_count", route="/") == 3
    assert value("flexilib_request_duration_seconds_sum", route="/") == pytest.approx(0.2042)
    assert value("flexilib_requests_in_flight", route="/") == 3
    assert value("flexilib_requests_in_flight", route="/api") == 0
    assert value("flexilib_handler_loads_total", route="/", result="ok") == 2
    assert value("flexilib_handler_loads_total", route="/", result="error") == 1
    assert value("flexilib_config_reloads_total", result="error") == 1
    assert value("flexilib_config_reloads_total", result="ok") == 0
    assert value("flexilib_worker_restarts_total") == 0
    assert value("flexilib_connections_open") == 7
    assert (
        value("flexilib_upstream_requests_total", upstream="http://10.0.0.1:80", result="ok") == 4
    )
    assert value("process_resident_memory_bytes", process="worker0") == 20_000_000
    assert value("process_cpu_seconds_total", process="worker0") == 1.5
    assert value("process_open_fds", process="master") > 0
    assert value("flexilib_build_info", version="9.9.9") == 1


def test_status_and_probes_answer_from_the_totals():
    totals = Totals("/x/proxy.ini", 1, RULES)
    app = AdminApp(totals)
    assert app.answer(b"GET", b"/healthz").status == 503
    totals.worker_started(0, 100)
    assert app.answer(b"GET", b"/healthz").body == b"ok\n"
    ready = app.answer(b"GET", b"/readyz")
    assert (ready.status, ready.body) == (
        503,
        b"starting: 0 of 1 worker(s) serving config generation 0\n",
    )
    totals.report(100, ("serving", 0))
    totals.report(100, stats_message([counted("/", "native", [(200, 0.0007)] * 3)]))
    assert app.answer(b"HEAD", b"/readyz?verbose").status == 200

    doc = json.loads(app.answer(b"GET", b"/status").body)
    assert doc["ready"] is True
    root = next(r for r in doc["routes"] if r["key"] == "/")
    assert (root["requests"], root["errors"], root["in_flight"]) == (3, 0, 0)
    assert 0.5 < root["p50_ms"] <= root["p99_ms"] <= 1.0
    assert doc["workers"][0]["pid"] == 100 and doc["workers"][0]["serving"] is True
    assert app.answer(b"DELETE", b"/status").status == 405
    assert app.answer(b"GET", b"/elsewhere").status == 404
    page = app.answer(b"GET", b"/")
    assert b'fetch("status"' in page.body and b"<script" in page.body


def test_admin_responses_close_their_connection():
    raw = encode(Response("ok\n", 200, content_type="text/plain"), head_only=False)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 3\r\n" in raw and b"Connection: close\r\n" in raw
    assert raw.endswith(b"\r\n\r\nok\n")
    assert encode(Response("ok\n"), head_only=True).endswith(b"\r\n\r\n")


def test_admin_settings():
    assert resolve({}, {}).admin == ("127.0.0.1", 8070)
    assert resolve({}, {}).admin_given is False
    given = resolve({"admin": "[::1]:9000"}, {})
    assert (given.admin, given.admin_given) == (("::1", 9000), True)
    assert resolve({}, {"SERVER_ADMIN": "off"}).admin is None
    assert resolve({}, {"SERVER_LOG_FORMAT": "json"}).log_format == "json"
    for bad in ("8070", "localhost:80", "127.0.0.1:99999", "127.0.0.1:"):
        with pytest.raises(SettingsError, match="is not HOST:PORT"):
            resolve({"admin": bad}, {})
    with pytest.raises(SettingsError, match="log format"):
        resolve({"log_format": "yaml"}, {})


class _Loop:
    def call_soon(self, callback) -> None:
        pass


def test_access_log_text_is_the_original_line_and_json_one_object(tmp_path):
    out = tmp_path / "log"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT)
    args = ("127.0.0.1:5", b"GET", b"/a?b", "1.1", 200, 0.002, 11, 0.0025, 1569, 4350)
    text = AccessLog(_Loop(), fd)
    text.log(*args, "/", "native")
    text.flush()
    structured = AccessLog(_Loop(), fd, json_format=True, worker=3)
    structured.log(*args, "/", "native")
    structured.flush()
    os.close(fd)
    first, second = out.read_text().splitlines()
    assert first == (
        '127.0.0.1:5 - - "GET /a?b HTTP/1.1" 200 ttfb 2.000ms 11 ttlb 2.500ms'
        " (pre-alloc: 1569, alloc: 4350)"
    )
    record = json.loads(second)
    del record["time"]
    assert record == {
        "remote": "127.0.0.1:5",
        "method": "GET",
        "target": "/a?b",
        "protocol": "HTTP/1.1",
        "status": 200,
        "bytes": 11,
        "ttfb_ms": 2.0,
        "ttlb_ms": 2.5,
        "prealloc": 1569,
        "alloc": 4350,
        "route": "/",
        "kind": "native",
        "worker": 3,
    }


def test_admin_listener_binds_with_the_family_of_its_host():
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.family == socket.AF_INET and sock.getsockname()[1] > 0
    finally:
        sock.close()
