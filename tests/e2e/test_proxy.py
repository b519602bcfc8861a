"""The reverse proxy, against real upstream servers on loopback (tests/upstreams/, nginx)."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import UPSTREAMS, RawClient, free_port, wait_until

from flexilib.config import ConfigError, parse_config
from flexilib.runtime.handler import validate_rules

BIG = 200 * 1024 * 1024
BLOCK = bytes(range(256)) * 256  # the upstream's pattern block (tests/upstreams/httpecho.py)


def echo(response: requests.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def seen_headers(data: dict) -> dict[str, list[str]]:
    """The echoed request headers as {lower-case name: [values]}."""
    headers: dict[str, list[str]] = {}
    for name, value in data["headers"]:
        headers.setdefault(name.lower(), []).append(value)
    return headers


def pattern_digest(size: int) -> str:
    digest = hashlib.sha256()
    for _ in range(size // len(BLOCK)):
        digest.update(BLOCK)
    digest.update(BLOCK[: size % len(BLOCK)])
    return digest.hexdigest()


def peak_rss_kb(server) -> int:
    """VmHWM of the server's (only) worker: the most memory it ever held."""
    (pid,) = server.worker_pids()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


# -- path mapping, headers ---------------------------------------------------------------
def test_path_mapping_follows_nginx(start_server, upstream):
    up = upstream()
    server = start_server(
        f"/keep = {up.url}\n"
        f"/strip/ = {up.url}/\n"
        f"/other/ = {up.url}/\n"  # the same target on two prefixes: one handler, two mappings
        f"/swap = {up.url}/v2\n"
        f"Host: h.example /hdr/ = {up.url}/from-header/\n"
    )
    cases = [
        ("/keep/a/b?q=1&r=2", {}, "/keep/a/b?q=1&r=2"),  # no path in the URL: unchanged
        ("/keepx", {}, "/keepx"),
        ("/strip/a/b?q=1", {}, "/a/b?q=1"),  # a path replaces the matched prefix
        ("/strip/", {}, "/"),
        ("/other/z?x", {}, "/z?x"),
        ("/swap/a?q", {}, "/v2/a?q"),
        ("/swapped", {}, "/v2ped"),  # literal replacement, as nginx does it
        ("/swap?only=query", {}, "/v2?only=query"),
        ("/hdr/x?y=1", {"Host": "h.example"}, "/from-header/x?y=1"),
    ]
    for path, headers, expected in cases:
        data = echo(requests.get(server.url + path, headers=headers, timeout=5))
        assert data["target"] == expected, path


def test_forwarded_headers_and_host(start_server, upstream):
    up = upstream()
    server = start_server(f"/keep/ = {up.url}/\n/preserve/ = {up.url}/ preserve_host=true\n")
    client = RawClient(server.port)
    client.send(
        b"GET /keep/x HTTP/1.1\r\nHost: front.example:8443\r\n"
        b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 198.51.100.1, 10.0.0.1\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: spoofed\r\n\r\n"
    )
    headers = seen_headers(json.loads(client.read_response().body))
    assert headers["x-forwarded-for"] == ["203.0.113.7, 198.51.100.1, 10.0.0.1, 127.0.0.1"]
    assert headers["x-forwarded-proto"] == ["http"]
    assert headers["x-forwarded-host"] == ["front.example:8443"]
    assert headers["host"] == [f"127.0.0.1:{up.port}"]
    client.send(b"GET /preserve/x HTTP/1.1\r\nHost: front.example\r\n\r\n")
    headers = seen_headers(json.loads(client.read_response().body))
    assert headers["host"] == ["front.example"]
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    client.close()


def test_hop_by_hop_headers_removed_both_ways(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url}\n")
    client = RawClient(server.port)
    body = b"5\r\nhello\r\n0\r\n\r\n"
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, X-Named\r\nX-Named: 1\r\n"
        b"Keep-Alive: timeout=5\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: x\r\n"
        b"TE: trailers\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\nExpect: 100-continue\r\n"
        b"X-End-To-End: yes\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    )
    assert client.read_response().status == 100  # flexilib answers Expect itself
    response = client.read_response()
    data = json.loads(response.body)
    headers = seen_headers(data)
    for gone in (
        "connection",
        "x-named",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
    ):
        assert gone not in headers, gone
    assert headers["x-end-to-end"] == ["yes"]
    assert (data["body_length"], data["body_chunked"]) == (5, False)  # re-framed by length
    assert headers["content-length"] == ["5"]
    client.close()

    client = RawClient(server.port)
    client.send(b"GET /hop HTTP/1.1\r\nHost: t\r\n\r\n")
    response = client.read_response()
    names = {name.lower() for name, _ in response.headers}
    for gone in ("x-hop-named", "keep-alive", "proxy-authenticate", "trailer", "upgrade"):
        assert gone not in names, gone
    assert response.header("x-end-to-end") == "kept"
    assert response.header("server") == "flexilib"  # the upstream's gives way, as in nginx
    assert response.header("connection") != "X-Hop-Named, keep-alive"
    assert response.body == b"hop"
    client.close()


def test_head_interim_and_bodyless_responses(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url}\n")
    client = RawClient(server.port)  # one connection: each framing must leave it usable
    client.send(b"HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n")
    response = client.read_response(head=True)  # a body after it would spoil the next one
    assert response.status == 200 and int(response.header("content-length")) > 100
    client.send(b"GET /status/304 HTTP/1.1\r\nHost: t\r\n\r\n")
    response = client.read_response()
    assert (response.status, response.header("etag"), response.body) == (304, '"v1"', b"")
    client.send(b"GET /status/204 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert client.read_response().status == 204
    client.send(b"HEAD /big?size=5000 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert client.read_response(head=True).header("content-length") == "5000"
    client.send(b"GET /reason HTTP/1.1\r\nHost: t\r\n\r\n")
    response = client.read_response()
    assert (response.status, response.reason) == (299, "Custom Reason")
    client.send(b"GET /continue HTTP/1.1\r\nHost: t\r\n\r\n")
    response = client.read_response()
    assert (response.status, response.body) == (200, b"continued")  # the 100 is not passed on
    client.send(b"GET /status/404 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert client.read_response().body == b"status!"
    client.close()
    assert up.stats()["connections"] == 1  # HEAD, 204 and 304 all left it reusable


# -- streaming ---------------------------------------------------------------------------
def test_200_mb_each_way_with_bounded_memory(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url}\n")
    echo(requests.get(f"{server.url}/warm-up", timeout=5))
    before = peak_rss_kb(server)

    client = RawClient(server.port, timeout=60)
    client.send(b"GET /big?size=%d HTTP/1.1\r\nHost: t\r\n\r\n" % BIG)
    line = client.file.readline()
    assert line.startswith(b"HTTP/1.1 200"), line
    while client.file.readline() not in (b"\r\n", b""):
        pass
    digest = hashlib.sha256()
    remaining = BIG
    while remaining:
        data = client.file.read1(min(remaining, 1 << 20))
        assert data, "connection closed early"
        digest.update(data)
        remaining -= len(data)
    assert digest.hexdigest() == pattern_digest(BIG)
    after_download = peak_rss_kb(server)

    client.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % BIG)
    for _ in range(BIG // len(BLOCK)):
        client.sock.sendall(BLOCK)
    data = json.loads(client.read_response().body)
    assert (data["body_length"], data["body_sha256"]) == (BIG, pattern_digest(BIG))
    client.close()
    after_upload = peak_rss_kb(server)
    print(
        f"\nworker VmHWM: {before} kB before, {after_download} kB after 200 MB down,"
        f" {after_upload} kB after 200 MB up"
    )
    assert after_upload - before < 32 * 1024, (before, after_download, after_upload)


def test_request_body_goes_upstream_as_it_arrives(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url} request_buffer=0\n")  # no buffering: streamed
    client = RawClient(server.port)
    client.send(
        b"PUT /stream HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"
    )
    # the upstream has the request while the client has not finished its body
    wait_until(lambda: ["PUT", "/stream"] in up.stats()["requests"], what="request upstream")
    pieces = [b"x" * 100_000] * 30
    for piece in pieces:
        client.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    client.send(b"0\r\n\r\n")
    data = json.loads(client.read_response().body)
    whole = b"first" + b"".join(pieces)
    assert data["body_chunked"] is True  # streamed on, re-chunked
    assert (data["body_length"], data["body_sha256"]) == (
        len(whole),
        hashlib.sha256(whole).hexdigest(),
    )
    client.close()


def test_chunked_response_streams_as_produced(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url}\n")
    client = RawClient(server.port)
    client.send(b"GET /gate HTTP/1.1\r\nHost: t\r\n\r\n")
    assert client.file.readline().startswith(b"HTTP/1.1 200")
    headers = []
    while (line := client.file.readline()) != b"\r\n":
        headers.append(line.lower())
    assert b"transfer-encoding: chunked\r\n" in headers
    assert client.file.readline() == b"5\r\n"
    assert client.file.readline() == b"first\r\n"  # before the upstream produced the rest
    assert up.get("/open").text == "ok"
    assert client.file.readline() == b"6\r\n"
    assert client.file.readline() == b"second\r\n"
    assert client.file.readline() == b"0\r\n"
    assert client.file.readline() == b"\r\n"
    client.close()

    response = requests.get(f"{server.url}/big?size=3000000&chunked=1", timeout=10)
    assert hashlib.sha256(response.content).hexdigest() == pattern_digest(3_000_000)
    response = requests.get(f"{server.url}/close-delimited", timeout=5)
    assert (response.headers["transfer-encoding"], response.content) == (
        "chunked",
        b"until the end",
    )

    client = RawClient(server.port)  # HTTP/1.0 client: no chunking, the body ends at close
    client.send(b"GET /big?size=100000&chunked=1 HTTP/1.0\r\nHost: t\r\n\r\n")
    response = client.read_response()
    assert response.header("transfer-encoding") is None
    assert hashlib.sha256(response.body).hexdigest() == pattern_digest(100_000)
    client.close()


# -- pooling -----------------------------------------------------------------------------
def test_pooled_connections_are_reused_and_capped(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url} max_connections=2\n")
    for i in range(20):  # a new client connection each time: the upstream one is kept
        echo(requests.get(f"{server.url}/echo/{i}", timeout=5))
    assert up.stats()["connections"] == 1

    results = []

    def slow() -> None:
        results.append(requests.get(f"{server.url}/sleep?s=0.3", timeout=10).status_code)

    threads = [threading.Thread(target=slow) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 6
    assert up.stats()["connections"] == 2  # the cap held; requests waited for a free one


def test_stale_pooled_connection_retried_only_when_safe(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url}\n")
    session = requests.Session()
    echo(session.get(f"{server.url}/drop-next", timeout=5))
    # the pooled connection is dropped unanswered: a GET is sent again on a new one
    assert echo(session.get(f"{server.url}/after-drop", timeout=5))["target"] == "/after-drop"
    assert [r for r in up.stats()["requests"] if r[1] == "/after-drop"] == [
        ["GET", "/after-drop"]
    ] * 2
    # so is a PUT whose body is in hand
    echo(session.get(f"{server.url}/drop-next", timeout=5))
    assert echo(session.put(f"{server.url}/put", data=b"abc", timeout=5))["body_length"] == 3
    # a POST never is
    echo(session.get(f"{server.url}/drop-next", timeout=5))
    response = session.post(f"{server.url}/post", data=b"once", timeout=5)
    assert response.status_code == 502
    assert [r for r in up.stats()["requests"] if r[1] == "/post"] == [["POST", "/post"]]
    server.wait_for_log(rf"POST /post: upstream {up.url}: closed the connection before responding")


# -- balancing and failures ------------------------------------------------------------------
def test_balancing_and_failover(start_server, upstream):
    ups = [upstream(name) for name in ("a", "b", "c")]
    urls = " ".join(up.url for up in ups)
    server = start_server(f"/ = {urls} fail_timeout=1\n")
    session = requests.Session()
    names = [echo(session.get(f"{server.url}/n", timeout=5))["name"] for _ in range(30)]
    assert sorted(names) == ["a"] * 10 + ["b"] * 10 + ["c"] * 10

    outcomes: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def load() -> None:
        with requests.Session() as s:
            while not stop.is_set():
                response = s.get(f"{server.url}/n", timeout=10)
                name = response.json()["name"] if response.status_code == 200 else "-"
                outcomes.append((time.monotonic(), response.status_code, name))

    thread = threading.Thread(target=load)
    thread.start()
    try:
        wait_until(lambda: len(outcomes) > 20, what="load running")
        ups[1].kill()
        killed = time.monotonic()
        server.wait_for_log(rf"upstream {ups[1].url}: cannot connect: .*taken out for 1s")
        detected = time.monotonic()
        wait_until(lambda: sum(t > detected for t, _, _ in outcomes) >= 30, what="more load")
        after = [name for t, _, name in outcomes if t > detected]
        assert set(after[:10]) <= {"a", "c"}  # within fail_timeout, b is left out
        # b comes back on the same port; after fail_timeout it gets traffic again
        upstream("b", ups[1].port)
        restarted = len(outcomes)
        wait_until(lambda: "b" in {n for _, _, n in outcomes[restarted:]}, what="b back")
    finally:
        stop.set()
        thread.join()
    failed = [(t - killed, status) for t, status, _ in outcomes if status != 200]
    assert failed == []  # not one request failed: refused connects went to the others


def test_round_robin_skips_a_dead_upstream_without_favouring_its_neighbour(start_server, upstream):
    """8 requests over two live upstreams go 4/4 while the one between them is taken out."""
    a, c = upstream("a"), upstream("c")
    dead = f"http://127.0.0.1:{free_port()}"
    server = start_server(f"/ = {a.url} {dead} {c.url} fail_timeout=60\n")
    session = requests.Session()
    first = [echo(session.get(f"{server.url}/n", timeout=5))["name"] for _ in range(3)]
    assert sorted(first) == ["a", "a", "c"] or sorted(first) == ["a", "c", "c"]
    server.wait_for_log(rf"upstream {dead}: cannot connect: .*taken out for 60s")
    names = [echo(session.get(f"{server.url}/n", timeout=5))["name"] for _ in range(8)]
    assert sorted(names) == ["a"] * 4 + ["c"] * 4, names


def test_unreachable_upstreams_answer_502(start_server):
    dead1, dead2 = free_port(), free_port()
    server = start_server(
        f"/one = http://127.0.0.1:{dead1}\n"
        f"/pool = http://127.0.0.1:{dead1} http://127.0.0.1:{dead2} fail_timeout=60\n"
    )
    response = requests.get(f"{server.url}/one", timeout=5)
    assert response.status_code == 502
    server.wait_for_log(rf"GET /one: upstream http://127.0.0.1:{dead1}: cannot connect")
    response = requests.get(f"{server.url}/pool", timeout=5)
    assert response.status_code == 502
    for port in (dead1, dead2):
        server.wait_for_log(rf"GET /pool: upstream http://127.0.0.1:{port}: .*taken out for 60s")
    response = requests.get(f"{server.url}/pool/again", timeout=5)
    assert response.status_code == 502
    server.wait_for_log(r"GET /pool/again: upstream -: every upstream is taken out")
    wait_until(
        lambda: sum('"GET /pool' in x and '" 502 ' in x for x in server.access_lines()) == 2,
        what="both /pool requests in the access log",
    )


def test_connect_timeout_answers_502(start_server):
    # a listener that never accepts, its backlog full: connecting hangs (no packet leaves loopback)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        probe.connect(("127.0.0.1", port))
        pytest.skip("this kernel accepts past a full backlog; no way to make connect hang")
    except TimeoutError:
        pass
    finally:
        probe.close()
    try:
        server = start_server(f"/ = http://127.0.0.1:{port} connect_timeout=0.3\n")
        started = time.monotonic()
        response = requests.get(f"{server.url}/x", timeout=10)
        assert response.status_code == 502
        assert time.monotonic() - started < 3
        server.wait_for_log(r"cannot connect: no connection within 0.3s \(connect_timeout\)")
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_read_timeout_answers_504(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url} read_timeout=0.3\n")
    started = time.monotonic()
    response = requests.get(f"{server.url}/sleep?s=3", timeout=10)
    assert response.status_code == 504
    assert time.monotonic() - started < 2
    server.wait_for_log(rf"GET /sleep\?s=3: upstream {up.url}: no response: .*answered 504")
    assert requests.get(f"{server.url}/sleep?s=0.05", timeout=10).text == "slept"


@pytest.mark.parametrize("chunked", [False, True])
def test_upstream_closing_mid_response_closes_the_client(start_server, upstream, chunked):
    up = upstream()
    server = start_server(f"/ = {up.url}\n")
    client = RawClient(server.port)
    client.send(
        b"GET /truncate%s HTTP/1.1\r\nHost: t\r\n\r\n" % (b"?chunked=1" if chunked else b"")
    )
    assert client.file.readline().startswith(b"HTTP/1.1 200")
    head = []
    while (line := client.file.readline()) != b"\r\n":
        head.append(line.lower())
    rest = client.file.read()  # until the proxy closes the connection
    if chunked:
        assert b"transfer-encoding: chunked\r\n" in head
        assert rest == b"4\r\npart\r\n"  # never the terminating 0-size chunk
    else:
        assert b"content-length: 1000\r\n" in head
        assert rest == b"x" * 100  # the connection closed short of the promised length
    client.close()
    server.wait_for_log(rf"upstream {up.url}: closed the connection mid-response")


# -- upgrade ---------------------------------------------------------------------------------
def test_websocket_echo_through_the_proxy(start_server):
    from websockets.sync.client import connect

    process = subprocess.Popen(
        [sys.executable, str(UPSTREAMS / "wsecho.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(process.stdout.readline().split()[1])
        server = start_server(f"/ws/ = http://127.0.0.1:{port}/\n")
        with connect(f"ws://127.0.0.1:{server.port}/ws/chat?room=1", max_size=None) as ws:
            assert ws.recv(timeout=5) == "/chat?room=1 127.0.0.1"
            ws.send("hello")
            assert ws.recv(timeout=5) == "hello"
            big = bytes(range(256)) * 4096  # 1 MiB, both ways through the tunnel
            ws.send(big)
            assert ws.recv(timeout=5) == big
        wait_until(
            lambda: any('"GET /ws/chat?room=1 HTTP/1.1" 101' in x for x in server.access_lines()),
            what="access log line for the tunnel",
        )
    finally:
        process.kill()
        process.wait(5)


def test_upgrade_refused_by_upstream_is_a_normal_response(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url}\n")
    client = RawClient(server.port)
    client.send(
        b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    response = client.read_response()
    assert response.status == 200
    headers = seen_headers(json.loads(response.body))
    assert headers["upgrade"] == ["websocket"] and headers["connection"] == ["upgrade"]
    assert client.closed_by_peer()  # what the client sends next is not HTTP: close
    client.close()


# -- nginx as the upstream -------------------------------------------------------------------
NGINX_CONF = """
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    keepalive_requests 1000;
    server {{
        listen 127.0.0.1:{port};
        location /files/ {{ alias {dir}/www/; }}
        location / {{
            return 200 "$request_uri|$http_x_forwarded_for|$host|$connection";
        }}
    }}
}}
"""


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (apt: nginx)")
def test_nginx_as_upstream(start_server, tmp_path):
    folder = tmp_path / "nginx"
    (folder / "www").mkdir(parents=True)
    (folder / "tmp").mkdir()
    blob = bytes(range(256)) * 40_000  # ~10 MB, sent by nginx with sendfile
    (folder / "www" / "blob.bin").write_bytes(blob)
    port = free_port()
    (folder / "nginx.conf").write_text(NGINX_CONF.format(dir=folder, port=port))
    nginx = subprocess.Popen(
        [
            "nginx",
            "-p",
            str(folder),
            "-e",
            str(folder / "error.log"),
            "-c",
            str(folder / "nginx.conf"),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: _connectable(port) or nginx.poll() is not None, what="nginx")
        assert nginx.poll() is None, nginx.stderr.read()
        server = start_server(f"/site/ = http://127.0.0.1:{port}/\n")
        with requests.Session() as session:
            answers = [
                session.get(
                    f"{server.url}/site/page?x=1", headers={"X-Forwarded-For": "192.0.2.9"}
                ).text.split("|")
                for _ in range(5)
            ]
            assert answers[0][:3] == ["/page?x=1", "192.0.2.9, 127.0.0.1", "127.0.0.1"]
            assert len({a[3] for a in answers}) == 1  # nginx's connection serial: one, pooled
            response = session.get(f"{server.url}/site/files/blob.bin")
            assert response.content == blob
            assert response.headers["server"] == "flexilib"
            assert session.get(f"{server.url}/site/files/missing").status_code == 404
    finally:
        nginx.terminate()
        nginx.wait(10)


def _connectable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


# -- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "target, message",
    [
        ("http://h read_timeout=0", "read_timeout must be a number of seconds > 0"),
        ("http://h connect_timeout=soon", "connect_timeout must be a number of seconds > 0"),
        ("http://h max_connections=0", "max_connections must be a whole number >= 1"),
        ("http://h preserve_host=yes", "preserve_host must be true or false"),
        ("http://h retries=3", "unknown option 'retries' for a proxy target"),
        ("http://h dispatch=pool", "unknown option 'dispatch' for a proxy target"),
        ("http://h/x?q=1", "must not have a query string"),
        ("http://h:99999", "has a bad port"),
        ("http://user:pw@h", "credentials in the URL are not supported"),
        ("http://", "has no host"),
    ],
)
def test_bad_proxy_options_are_config_errors(target, message, tmp_path):
    with pytest.raises(ConfigError, match=message) as error:
        validate_rules(parse_config(f"/a = {target}\n", tmp_path / "proxy.ini"), "proxy.ini")
    assert "proxy.ini:1:" in str(error.value)


def test_xff_under_a_header_rule_and_access_log(start_server, upstream):
    up = upstream()
    server = start_server(f"X-Team: blue /api/ = {up.url}/blue/\n/ = {up.url}\n")
    data = echo(requests.get(f"{server.url}/api/v?1", headers={"X-Team": "blue-7"}, timeout=5))
    assert data["target"] == "/blue/v?1"
    data = echo(requests.get(f"{server.url}/api/v?1", timeout=5))
    assert data["target"] == "/api/v?1"
    wait_until(
        lambda: sum('"GET /api/v?1 HTTP/1.1" 200' in x for x in server.access_lines()) == 2,
        what="access log lines",
    )


# -- connection-layer behaviour after proxied requests (needs the protocol.py part of this patch)
def test_idle_after_a_proxied_request_is_closed_quietly(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url}\n", "--body-timeout", "0.5", "--keepalive-timeout", "2")
    client = RawClient(server.port)
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    )
    assert client.read_response().status == 100
    client.send(b"hi")
    assert json.loads(client.read_response().body)["body_length"] == 2
    client.send(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
    assert client.read_response().status == 200  # not a second 100 Continue
    started = time.monotonic()
    assert client.closed_by_peer()  # idle: closed at keepalive_timeout, never answered 408
    assert time.monotonic() - started > 1.0
    client.close()


def test_stalled_streamed_body_is_closed(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url}\n", "--body-timeout", "0.5")
    client = RawClient(server.port)
    client.send(b"PUT /stall HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
    assert client.closed_by_peer()
    server.wait_for_log(r"client too slow sending a streamed body")
    client.close()
