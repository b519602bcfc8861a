"""The admin port end to end: real servers, a real Prometheus, a real headless Chromium.

Counts are checked against the requests each test sent, after the workers'
next report (once a tick) has reached the master: `wait_until` polls for it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from conftest import REPO, RawClient, Upstream, free_port, wait_until
from prometheus_client.parser import text_string_to_metric_families

ARTIFACTS = REPO / "tests" / "artifacts"


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def scrape(server) -> str:
    answer = requests.get(f"{server.admin_url}/metrics", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return answer.text


def status(server) -> dict:
    return requests.get(f"{server.admin_url}/status", timeout=5).json()


def readyz(server) -> tuple[int, str]:
    answer = requests.get(f"{server.admin_url}/readyz", timeout=5)
    return answer.status_code, answer.text


def counted(server, expected: int) -> bool:
    return metric(scrape(server), "flexilib_requests_total") == expected


@pytest.fixture
def sample(examples_built) -> Path:
    return examples_built / "libsample.so"


def test_metrics_status_and_health_count_what_two_workers_served(start_server, sample):
    server = start_server(f"/fail = {sample}\n/ = {sample}\n", "--workers", "2")
    wait_until(lambda: readyz(server)[0] == 200, what="ready")
    for _ in range(30):  # a connection each: the kernel spreads them over both workers
        assert requests.get(f"{server.url}/", timeout=5).status_code == 200
    for _ in range(4):
        answer = requests.get(f"{server.url}/fail", headers={"x-status": "503"}, timeout=5)
        assert answer.status_code == 503
    wait_until(lambda: counted(server, 34), what="34 requests counted")

    text = scrape(server)
    assert metric(text, "flexilib_requests_total", route="/", kind="native", code="200") == 30
    assert metric(text, "flexilib_requests_total", route="/fail", code="503") == 4
    assert metric(text, "flexilib_request_duration_seconds_count", route="/") == 30
    assert metric(text, "flexilib_request_duration_seconds_bucket", route="/", le="+Inf") == 30
    assert metric(text, "flexilib_request_duration_seconds_sum", route="/") > 0
    # both rules name one library: its loads (one per worker that served) count once
    assert 1 <= metric(text, "flexilib_handler_loads_total", result="ok") <= 2
    assert metric(text, "flexilib_requests_in_flight", route="/") == 0
    assert metric(text, "flexilib_worker_restarts_total") == 0
    assert metric(text, "flexilib_build_info", version="0.1.0") == 1
    for process in ("master", "worker0", "worker1"):
        assert metric(text, "process_resident_memory_bytes", process=process) > 1e6
        assert metric(text, "process_open_fds", process=process) > 3

    doc = status(server)
    assert doc["ready"] is True and doc["reason"] is None
    assert doc["config"]["path"].endswith("proxy.ini")
    assert doc["config"]["last_reload"] is None
    routes = {r["key"]: r for r in doc["routes"]}
    assert [r["key"] for r in doc["routes"]] == ["/fail", "/"]  # the config's order
    assert routes["/"]["requests"] == 30 and routes["/"]["errors"] == 0
    assert routes["/fail"]["requests"] == 4 and routes["/fail"]["errors"] == 4
    assert routes["/"]["kind"] == "native" and routes["/"]["target"] == str(sample)
    assert routes["/"]["version"] == 1 and routes["/"]["loaded_at"]
    assert 0 < routes["/"]["p50_ms"] <= routes["/"]["p99_ms"]
    assert sorted(w["number"] for w in doc["workers"]) == [0, 1]
    assert sum(w["requests"] for w in doc["workers"]) == 34
    assert set(server.worker_pids()) == {w["pid"] for w in doc["workers"]}

    health = requests.get(f"{server.admin_url}/healthz", timeout=5)
    assert (health.status_code, health.text) == (200, "ok\n")
    assert requests.get(f"{server.admin_url}/nope", timeout=5).status_code == 404
    assert requests.post(f"{server.admin_url}/metrics", timeout=5).status_code == 405
    page = requests.get(f"{server.admin_url}/", timeout=5)
    assert page.headers["content-type"].startswith("text/html")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # nothing external


def _listening_inode(port: int) -> str:
    """The inode of the socket listening on 127.0.0.1:`port`, from /proc/net/tcp."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            return fields[9]
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def _open_files(pid: int) -> set[str]:
    folder = Path(f"/proc/{pid}/fd")
    return {os.readlink(fd) for fd in folder.iterdir()}


def test_workers_do_not_inherit_the_admin_socket(start_server, sample):
    server = start_server(f"/ = {sample}\n", "--workers", "2")
    admin = f"socket:[{_listening_inode(server.admin_port)}]"
    assert admin in _open_files(server.process.pid)
    workers = server.worker_pids()
    assert len(workers) == 2
    for pid in workers:  # else a worker would hold the admin port after the master is gone
        assert admin not in _open_files(pid)


def test_readyz_turns_503_on_sigterm_while_a_slow_request_finishes(start_server, sample):
    server = start_server(f"/ = {sample}\n", "--workers", "2")
    wait_until(lambda: readyz(server) == (200, "ready\n"), what="ready")
    answers = []

    def slow() -> None:
        answer = requests.get(f"{server.url}/", headers={"x-slow": "2000"}, timeout=15)
        answers.append((answer.status_code, answer.content))

    client = threading.Thread(target=slow)
    client.start()
    wait_until(
        lambda: status(server)["routes"][0]["in_flight"] == 1, what="the slow request in flight"
    )
    server.signal(signal.SIGTERM)
    code, reason = wait_until(
        lambda: (r := readyz(server))[0] == 503 and r, what="/readyz 503 after SIGTERM"
    )
    assert reason.startswith("stopping")
    assert status(server)["ready"] is False
    client.join(15)
    assert answers == [(200, b"i am slow\n\n")]  # the request in flight finished
    assert server.process.wait(15) == 0


def test_a_rejected_reload_keeps_the_server_ready(start_server, sample):
    server = start_server(f"/ = {sample}\n")
    wait_until(lambda: readyz(server)[0] == 200, what="ready")
    server.config.write_text("this line is not a rule\n")
    server.signal(signal.SIGHUP)
    reload = wait_until(lambda: status(server)["config"]["last_reload"], what="the reload")
    assert reload["result"] == "error" and "expected 'KEY = TARGET'" in reload["error"]
    assert readyz(server) == (200, "ready\n")
    assert metric(scrape(server), "flexilib_config_reloads_total", result="error") == 1

    server.config.write_text(f"/two = {sample}\n/ = {sample}\n")
    server.signal(signal.SIGHUP)
    wait_until(lambda: status(server)["config"]["generation"] == 1, what="generation 1")
    wait_until(lambda: readyz(server)[0] == 200, what="the worker serving generation 1")
    doc = status(server)
    assert doc["config"]["last_reload"]["result"] == "ok"
    assert [r["key"] for r in doc["routes"]] == ["/two", "/"]
    assert metric(scrape(server), "flexilib_config_reloads_total", result="ok") == 1


def test_readyz_waits_for_every_worker_to_serve_a_new_config(start_server, sample):
    server = start_server(f"/ = {sample}\n", "--workers", "2")
    wait_until(lambda: readyz(server)[0] == 200, what="ready")
    stopped, running = server.worker_pids()
    os.kill(stopped, signal.SIGSTOP)  # it cannot take the new config until it runs again
    try:
        server.config.write_text(f"/new = {sample}\n/ = {sample}\n")
        server.signal(signal.SIGHUP)
        waiting = (503, "starting: 1 of 2 worker(s) serving config generation 1\n")
        wait_until(lambda: readyz(server) == waiting, what="the running worker on generation 1")
        serving = {w["pid"]: w["serving"] for w in status(server)["workers"]}
        assert serving == {stopped: False, running: True}
    finally:
        os.kill(stopped, signal.SIGCONT)
    wait_until(lambda: readyz(server) == (200, "ready\n"), what="both serving generation 1")


def test_upstream_attempts_are_counted(start_server):
    live = Upstream("live")
    try:
        dead = free_port()  # nothing listens there
        server = start_server(f"/dead = http://127.0.0.1:{dead}\n/ = {live.url}\n")
        assert requests.get(f"{server.url}/hello", timeout=5).status_code == 200
        assert requests.get(f"{server.url}/dead/x", timeout=5).status_code == 502

        def upstream_counts() -> tuple[float, float]:
            text = scrape(server)
            ok = metric(text, "flexilib_upstream_requests_total", upstream=live.url, result="ok")
            failed = metric(
                text,
                "flexilib_upstream_requests_total",
                upstream=f"http://127.0.0.1:{dead}",
                result="error",
            )
            return ok, failed

        wait_until(lambda: upstream_counts()[0] == 1 and upstream_counts()[1] >= 1)
    finally:
        live.kill()


def test_bad_admin_settings_are_refused(tmp_path, sample):
    config = tmp_path / "proxy.ini"
    config.write_text(f"/ = {sample}\n")
    base = [sys.executable, "-m", "flexilib", "serve", "--config", str(config)]
    base += ["--address", "127.0.0.1", "--port", str(free_port())]
    bad = subprocess.run([*base, "--admin", "localhost"], capture_output=True, text=True)
    assert bad.returncode == 2 and "admin address 'localhost' is not HOST:PORT" in bad.stderr
    fmt = subprocess.run([*base, "--log-format", "xml"], capture_output=True, text=True)
    assert fmt.returncode == 2 and "log format 'xml'" in fmt.stderr
    broken = tmp_path / "broken.ini"
    broken.write_text("no rule here\n")
    rejected = subprocess.run(
        [*base, "--config", str(broken), "--log-format", "json"], capture_output=True, text=True
    )
    assert rejected.returncode == 2
    (line,) = rejected.stderr.splitlines()  # in JSON too, for the log shipper
    assert "expected 'KEY = TARGET'" in json.loads(line)["message"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [*base, "--admin", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=20
        )
    assert busy.returncode == 2
    assert f"cannot listen on admin 127.0.0.1:{port}" in busy.stderr


# -- JSON logs -----------------------------------------------------------------------

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FIELDS = {
    "time",
    "remote",
    "method",
    "target",
    "protocol",
    "status",
    "bytes",
    "ttfb_ms",
    "ttlb_ms",
    "prealloc",
    "alloc",
    "route",
    "kind",
    "worker",
}


def test_json_logs_parse_line_by_line_under_load(start_server, sample):
    server = start_server(f"/ = {sample}\n", "--log-format", "json")
    per_client, batch, clients = 2500, 50, 4

    def load(number: int) -> None:
        client = RawClient(server.port)
        request = f'GET /c{number}?q="x" HTTP/1.1\r\nHost: t\r\n\r\n'.encode()
        for _ in range(per_client // batch):
            client.send(request * batch)  # pipelined: many requests per system call
            for _ in range(batch):
                assert client.read_response().status == 200
        client.close()

    threads = [threading.Thread(target=load, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    total = per_client * clients
    wait_until(lambda: len(server.access_lines()) >= total, what=f"{total} log lines")
    lines = server.access_lines()
    assert len(lines) == total
    targets = set()
    for line in lines:
        record = json.loads(line)
        assert set(record) == FIELDS
        assert RFC3339_MS.match(record["time"]), record["time"]
        assert (record["method"], record["protocol"], record["status"]) == ("GET", "HTTP/1.1", 200)
        assert (record["route"], record["kind"], record["worker"]) == ("/", "native", 0)
        assert record["bytes"] == 2 and 0 <= record["ttfb_ms"] <= record["ttlb_ms"]
        assert record["remote"].startswith("127.0.0.1:")
        targets.add(record["target"])
    assert targets == {f'/c{n}?q="x"' for n in range(clients)}
    diagnostics = [json.loads(line) for line in server.errors().splitlines()]
    assert any("serving" in d["message"] for d in diagnostics)
    assert all(RFC3339_MS.match(d["time"]) and d["pid"] > 0 for d in diagnostics)


# -- the status page in a real browser ----------------------------------------------


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (CI installs the Debian package)")
    return found


def _headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=5000"]
    return subprocess.run(
        [browser, *flags, *args], capture_output=True, text=True, timeout=90, check=True
    )


class _Rows(HTMLParser):
    """The cells of each `<tr data-route=...>` of the rendered page, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self._route: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "tr" and "data-route" in attrs:
            self._route = attrs["data-route"]
            self.rows[self._route] = []
        elif tag == "td" and self._route is not None:
            self.rows[self._route].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._route = None

    def handle_data(self, data: str) -> None:
        if self._route is not None and self.rows[self._route]:
            self.rows[self._route][-1] += data


def test_status_page_renders_the_routes_in_chromium(start_server, sample, tmp_path):
    browser = _chromium()
    server = start_server(f"/api = {sample}\n/ = {sample}\n", "--workers", "2")
    for _ in range(7):
        requests.get(f"{server.url}/api/x", timeout=5)
    for _ in range(3):
        requests.get(f"{server.url}/", headers={"x-status": "500"}, timeout=5)
    wait_until(lambda: counted(server, 10), what="10 requests counted")

    dom = _headless(browser, tmp_path / "profile", "--dump-dom", f"{server.admin_url}/").stdout
    assert 'data-loaded="1"' in dom, dom[:2000]  # the script ran and rendered /status
    rows = _Rows()
    rows.feed(dom)
    header = ["route", "target", "kind", "version", "loaded", "requests", "errors"]
    api, root = rows.rows["/api"], rows.rows["/"]
    assert dict(zip(header, api, strict=False)) | {"loaded": ""} == {
        "route": "/api",
        "target": str(sample),
        "kind": "native",
        "version": "1",
        "loaded": "",
        "requests": "7",
        "errors": "0",
    }
    assert (root[5], root[6]) == ("3", "3")
    assert "ready" in dom

    shot = tmp_path / "status-page.png"
    _headless(
        browser,
        tmp_path / "profile",
        "--window-size=1280,640",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        f"{server.admin_url}/",
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "status-page.png")  # the CI run's artefact


# -- Prometheus ------------------------------------------------------------------------


class Prometheus:
    """/usr/bin/prometheus scraping one admin port every second, on loopback, in a temp dir."""

    def __init__(self, folder: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip("prometheus is not installed (CI installs the Debian package)")
        folder.mkdir()
        config = folder / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: flexilib\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "prometheus.log"
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )
        wait_until(self._ready, 60, 0.2, what="prometheus ready")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def query(self, expression: str) -> float | None:
        """The value of an instant query with one result; None while it has none."""
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=5)
        result = answer.json()["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def test_prometheus_sums_requests_across_workers_and_a_killed_one(start_server, sample, tmp_path):
    server = start_server(f"/ = {sample}\n", "--workers", "2")
    prometheus = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{server.admin_port}")
    try:
        wait_until(lambda: prometheus.query("up") == 1, 30, 0.2, what="a first scrape")
        sent = 0
        for _ in range(40):
            assert requests.get(f"{server.url}/", timeout=5).status_code == 200
            sent += 1
        wait_until(lambda: counted(server, sent), what="the first requests counted")
        busy = [w for w in status(server)["workers"] if w["requests"] > 0]
        victim = busy[0]  # it served requests, and it is about to die without a goodbye
        wait_until(
            lambda: prometheus.query("sum(flexilib_requests_total)") == sent,
            30,
            0.2,
            what="Prometheus has the first requests",
        )
        server_pids = set(server.worker_pids())
        assert victim["pid"] in server_pids
        os.kill(victim["pid"], signal.SIGKILL)
        wait_until(
            lambda: (
                (pids := {w["pid"] for w in status(server)["workers"]})
                and victim["pid"] not in pids
                and len(pids) == 2
                and readyz(server)[0] == 200
            ),
            what="the killed worker replaced and serving",
        )
        for _ in range(25):
            assert requests.get(f"{server.url}/", timeout=5).status_code == 200
            sent += 1
        wait_until(
            lambda: prometheus.query("sum(flexilib_requests_total)") == sent,
            30,
            0.2,
            what=f"Prometheus: sum(flexilib_requests_total) == {sent}",
        )
        assert prometheus.query("flexilib_worker_restarts_total") == 1
        assert prometheus.query("sum(flexilib_request_duration_seconds_count)") == sent
        assert prometheus.query('flexilib_build_info{version="0.1.0"}') == 1
    finally:
        prometheus.stop()
