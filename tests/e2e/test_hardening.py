"""Issue 10, the HTTP side: each attack from the report, against a real server, now refused.

The findings are numbered as in the issue; each test failed on the code before the fix.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading

import pytest
import requests
from conftest import REPO, RawClient, wait_until

HANDLERS = REPO / "tests" / "handlers"

NAMED = """
from flexilib import Response


def handle_request(request):
    return Response("{name} " + request.path)
"""

BIG = """
from flexilib import Response

BODY = b"x" * (20 * 1024 * 1024)


def handle_request(request):
    return Response(BODY)
"""

CF_WORKER = """
from workers import Response


async def on_fetch(request, env, ctx):
    return Response(request.headers.get("cf-connecting-ip") or "none")
"""


def _write(folder, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def _request(port: int, data: bytes, head: bool = False):
    client = RawClient(port)
    try:
        client.send(data)
        return client.read_response(head)
    finally:
        client.close()


def _echo(port: int, data: bytes) -> dict:
    response = _request(port, data)
    assert response.status == 200, response
    return json.loads(response.body)


def _headers(seen: dict) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in seen["headers"]:
        headers.setdefault(name.lower(), []).append(value)
    return headers


# -- 1. trailers -----------------------------------------------------------------------------
def test_trailers_never_become_headers(start_server):
    server = start_server(f"/ = {HANDLERS / 'echo.py'}\n")
    seen = _echo(
        server.port,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-User: admin\r\nX-Other: 1\r\n\r\n",
    )
    assert seen["body"] == "hello"
    assert "x-user" not in _headers(seen) and "x-other" not in _headers(seen)


def test_a_trailer_flood_is_431(start_server):
    server = start_server(f"/ = {HANDLERS / 'echo.py'}\n")
    client = RawClient(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n")
    try:  # 1 MB of trailer lines: the server answers (and closes) long before the end
        for _ in range(1000):
            client.send(b"X-Flood: " + b"a" * 1000 + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert client.read_response().status == 431
    server.wait_for_log("431: header section with trailers too large")


def test_one_long_trailer_line_is_431(start_server):
    server = start_server(f"/ = {HANDLERS / 'echo.py'}\n")
    client = RawClient(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n")
    try:  # one trailer field that never ends: httptools would gather it whole
        client.send(b"X-Long: ")
        for _ in range(1000):
            client.send(b"a" * 1000)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert client.read_response().status == 431


# -- 4 and 10. paths, Host, version ---------------------------------------------------------
@pytest.fixture
def admin_server(start_server, tmp_path):
    admin = _write(tmp_path, "admin.py", NAMED.format(name="admin"))
    public = _write(tmp_path, "public.py", NAMED.format(name="public"))
    return start_server(f"/admin = {admin}\n/ = {public}\n")


@pytest.mark.parametrize("path", ["//admin", "/./admin", "/%61dmin", "/x/../admin", "/%2e/admin"])
def test_every_spelling_of_a_path_routes_as_that_path(admin_server, path):
    response = _request(admin_server.port, b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
    assert response.status == 200
    assert response.body == f"admin {path}".encode()  # routed by the normal form; path as sent


@pytest.mark.parametrize(
    "path", ["/x/../../admin", "/public/..%2fadmin", "/a%2Fb", "/a%00b", "/a%zz", "/%2e%2e/x"]
)
def test_paths_that_cannot_be_normalised_are_400(admin_server, path):
    response = _request(admin_server.port, b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
    assert response.status == 400


def test_host_rules_ignore_case(start_server, tmp_path):
    special = _write(tmp_path, "special.py", NAMED.format(name="special"))
    other = _write(tmp_path, "other.py", NAMED.format(name="other"))
    server = start_server(f"Host: api.example.com /  = {special}\n/ = {other}\n")
    for host in ("api.example.com", "API.Example.COM:8080"):
        response = requests.get(f"{server.url}/x", headers={"Host": host}, timeout=5)
        assert response.text == "special /x", host


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/1.0\r\n\r\n", 200),  # HTTP/1.0 needs no Host
    ],
)
def test_host_and_version_are_checked(admin_server, head, status):
    assert _request(admin_server.port, head).status == status


# -- 4. the proxy maps the normal form --------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "status", "upstream_target"),
    [
        ("/public/a/../b?q=1", 200, "/assets/b?q=1"),
        ("/public/%61", 200, "/assets/a"),
        ("/public/../admin", 404, None),  # normalised to /admin: no rule, nothing upstream
        ("/public/%2e%2e/admin", 404, None),
        ("/public/..%2fadmin", 400, None),
        ("/public/..%2Fadmin", 400, None),
    ],
)
def test_the_proxy_cannot_be_walked_out_of_its_mapping(
    start_server, upstream, path, status, upstream_target
):
    up = upstream()
    server = start_server(f"/public/ = {up.url}/assets/\n")
    response = _request(server.port, b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
    assert response.status == status
    targets = [target for _, target in up.stats()["requests"]]
    assert targets == ([upstream_target] if upstream_target else [])


# -- 5. send timeout and write backpressure --------------------------------------------------
def test_a_client_that_reads_nothing_is_dropped_after_the_send_timeout(start_server, tmp_path):
    big = _write(tmp_path, "big.py", BIG)
    server = start_server(f"/ = {big}\n", "--send-timeout", "1")
    client = socket.create_connection(("127.0.0.1", server.port))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # pipelined: while the first answer sits unread, the others are not even read
    client.sendall(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n" * 20)
    server.wait_for_log(r"read nothing for 1s: closing", timeout=30)
    assert len([line for line in server.access_lines() if '"GET /' in line]) <= 2
    client.close()


# -- 6. the proxy does not let a slow client pin upstream connections -------------------------
def test_clients_not_reading_do_not_pin_the_upstream_pool(start_server, upstream):
    up = upstream()
    rule = f"/ = {up.url} max_connections=2 connect_timeout=2"
    server = start_server(rule + "\n")
    size = 32 * 1024 * 1024
    sleepers = []
    for _ in range(4):  # each asks for 32 MB and reads none of it
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /big?size=%d HTTP/1.1\r\nHost: t\r\n\r\n" % size)
        sleepers.append(sock)
    wait_until(lambda: len(up.stats()["requests"]) >= 4, what="4 big requests upstream")
    for _ in range(3):
        probe = requests.get(f"{server.url}/probe", timeout=10)
        assert probe.status_code == 200
    for sock in sleepers:
        sock.close()


def test_slow_request_bodies_do_not_pin_the_upstream_pool(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url} max_connections=2 connect_timeout=2\n")
    slow = []
    for _ in range(4):  # each promises 200 kB and sends 10 bytes of it
        client = RawClient(server.port)
        client.send(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n0123456789")
        slow.append(client)
    for _ in range(3):
        assert requests.get(f"{server.url}/probe", timeout=10).status_code == 200
    assert ["POST", "/slow"] not in up.stats()["requests"]  # not connected before the body
    for client in slow:
        client.close()


def test_a_full_pool_queues_requests_instead_of_failing(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url} max_connections=1 connect_timeout=5\n")
    results: list[int] = []

    def call() -> None:
        results.append(requests.get(f"{server.url}/sleep?s=0.5", timeout=10).status_code)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200, 200, 200]
    assert up.stats()["connections"] == 1


# -- 8. Content-Length with trailing whitespace ----------------------------------------------
@pytest.mark.parametrize("space", [b" ", b"\t", b"  \t"])
def test_content_length_with_trailing_whitespace_is_forwarded(start_server, upstream, space):
    up = upstream()
    server = start_server(f"/ = {up.url}\n")
    seen = _echo(
        server.port,
        b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 5%s\r\n\r\nhello" % space,
    )
    assert seen["body_length"] == 5
    assert _headers(seen)["content-length"] == ["5"]


# -- 9. upgrades ---------------------------------------------------------------------------------
UPGRADE = b"GET /u HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"


def test_only_websocket_upgrades_are_forwarded_by_default(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url}\n")
    seen = _echo(server.port, UPGRADE)
    assert "upgrade" not in _headers(seen)


def test_a_rule_can_allow_other_upgrades(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url} upgrade=websocket,h2c\n")
    seen = _echo(server.port, UPGRADE)
    assert _headers(seen)["upgrade"] == ["h2c"]


# -- 11. forwarded headers and underscores --------------------------------------------------------
SPOOFED = (
    b"GET /f HTTP/1.1\r\nHost: t\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"
    b"CF-Connecting-IP: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\n\r\n"
)


def test_the_proxy_sets_forwarded_headers_from_the_connection(start_server, upstream):
    up = upstream()
    server = start_server(f"/ = {up.url}\n")
    headers = _headers(_echo(server.port, SPOOFED))
    assert headers["x-real-ip"] == ["127.0.0.1"]
    assert headers["forwarded"] == ["for=127.0.0.1;proto=http"]
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    assert "cf-connecting-ip" not in headers and "x_forwarded_for" not in headers


def test_underscore_header_names_are_dropped_unless_kept(start_server):
    config = f"/ = {HANDLERS / 'echo.py'}\n"
    dropped = _headers(_echo(start_server(config).port, SPOOFED))
    assert "x_forwarded_for" not in dropped and "x-real-ip" in dropped
    kept = _headers(_echo(start_server(config, "--underscores-in-headers", "on").port, SPOOFED))
    assert kept["x_forwarded_for"] == ["6.6.6.6"]


def test_a_worker_learns_the_client_address_from_the_connection(start_server, tmp_path):
    worker = _write(tmp_path, "cf.py", CF_WORKER)
    server = start_server(f"/ = worker:{worker}\n")
    response = _request(server.port, SPOOFED)
    assert (response.status, response.body) == (200, b"127.0.0.1")


# -- 12. a path component too long for the file system ------------------------------------------
def test_a_too_long_path_component_is_a_config_error(tmp_path):
    config = tmp_path / "proxy.ini"
    config.write_text(f"/x = lambda-runtime:{'a' * 300}/bootstrap\n")
    result = subprocess.run(
        [sys.executable, "-m", "flexilib", "check", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{config}:1: path component" in result.stderr
