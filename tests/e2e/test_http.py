"""The HTTP/1.1 layer, spoken byte by byte over raw sockets."""

from __future__ import annotations

import json
import socket
import threading

import pytest
import requests
from conftest import REPO, RawClient, wait_until

ECHO = REPO / "tests" / "handlers" / "echo.py"


@pytest.fixture
def server(start_server, examples_built):
    return start_server(
        f"/echo = {ECHO}\n/ = {examples_built / 'libsample.so'}\n",
        "--header-timeout",
        "1",
        "--keepalive-timeout",
        "1",
        "--max-body-bytes",
        "1000",
    )


def get(path: str = "/", extra: str = "", version: str = "1.1") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode()


def test_keep_alive_with_date_server_and_length(server):
    client = RawClient(server.port)
    for _ in range(3):
        client.send(get())
        response = client.read_response()
        assert response.status == 200
        assert response.body == b" 1"  # one request header: Host
        assert response.header("content-length") == "2"
        assert response.header("server") == "flexilib"
        assert response.header("date").endswith(" GMT")
        assert response.header("x-custom-foo") == "bar"
        assert response.header("content-type") == "text/plain"
        assert response.header("connection") is None
    client.close()


def test_pipelined_requests_are_answered_in_order(server):
    client = RawClient(server.port)
    client.send(get("/", "x-slow: 200\r\n") + get("/echo?n=2") + get("/", "x-status: 201\r\n"))
    first, second, third = (client.read_response() for _ in range(3))
    assert first.body == b"i am slow\n\n"
    assert json.loads(second.body)["query"] == "n=2"
    assert third.status == 201
    client.close()


def test_connection_close_is_honoured(server):
    client = RawClient(server.port)
    client.send(get("/", "Connection: close\r\n"))
    response = client.read_response()
    assert response.status == 200
    assert response.header("connection") == "close"
    assert client.closed_by_peer()


def test_http10_closes_unless_keep_alive_asked(server):
    client = RawClient(server.port)
    client.send(b"GET / HTTP/1.0\r\n\r\n")
    response = client.read_response()
    assert response.status == 200 and response.body == b" 0"
    assert client.closed_by_peer()
    client = RawClient(server.port)
    client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert client.read_response().header("connection") == "keep-alive"
    client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert client.read_response().status == 200
    client.close()


def test_head_has_length_but_no_body(server):
    client = RawClient(server.port)
    client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get())
    head = client.read_response(head=True)
    assert head.status == 200 and head.header("content-length") == "2"
    after = client.read_response()  # the next response starts right after the head
    assert after.body == b" 1"
    client.close()


def test_chunked_request_body(server):
    client = RawClient(server.port)
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    assert json.loads(client.read_response().body)["body"] == "hello world"
    client.close()


def test_expect_100_continue(server):
    client = RawClient(server.port)
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = client.read_response()
    assert interim.status == 100
    client.send(b"data")
    final = client.read_response()
    assert final.status == 200 and json.loads(final.body)["body"] == "data"
    client.close()


def test_expect_100_with_too_large_body_gets_413_without_continue(server):
    client = RawClient(server.port)
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
    )
    assert client.read_response().status == 413
    assert client.closed_by_peer()


def test_body_too_large_413_by_length_and_by_chunks(server):
    response = requests.post(server.url + "/echo", data=b"x" * 1001)
    assert response.status_code == 413
    client = RawClient(server.port)
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"200\r\n"
        + b"y" * 512
        + b"\r\n"
        + b"200\r\n"
        + b"y" * 512
        + b"\r\n"
    )
    assert client.read_response().status == 413
    assert "413" in server.wait_for_log("body over the limit")


def test_header_section_too_large_431(server):
    client = RawClient(server.port)
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n")
    assert client.read_response().status == 431
    assert client.closed_by_peer()
    client = RawClient(server.port)  # arriving in pieces, never completed
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\n")
    for _ in range(12):
        client.send(b"X-Piece: " + b"b" * 8000 + b"\r\n")
    assert client.read_response().status == 431
    server.wait_for_log("431: header section too large")


def test_malformed_request_400_and_other_connections_unaffected(server):
    other = RawClient(server.port)
    other.send(get())
    assert other.read_response().status == 200
    bad = RawClient(server.port)
    bad.send(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n")
    assert bad.read_response().status == 400
    assert bad.closed_by_peer()
    other.send(get())
    assert other.read_response().status == 200
    server.wait_for_log("400: malformed request")
    wait_until(lambda: any('" 400 ' in line for line in server.access_lines()), what="400 line")


def test_slow_client_gets_408(server):
    client = RawClient(server.port)
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\n")  # never finishes the header section
    assert client.read_response().status == 408
    assert client.closed_by_peer()
    server.wait_for_log("408: client too slow")


def test_idle_keep_alive_connection_is_closed(server):
    client = RawClient(server.port)
    client.send(get())
    assert client.read_response().status == 200
    assert client.closed_by_peer()  # blocks until the 1 s keep-alive timeout closes it


def test_connection_cap(start_server, examples_built):
    server = start_server(f"/ = {examples_built / 'libsample.so'}\n", "--max-connections", "2")
    first, second = RawClient(server.port), RawClient(server.port)
    for client in (first, second):
        client.send(get())
        assert client.read_response().status == 200
    third = RawClient(server.port)
    assert third.closed_by_peer()
    server.wait_for_log("connection refused: 2 open")
    first.close()
    wait_until(lambda: _answers(server.port), what="a free connection slot")


def _answers(port: int) -> bool:
    try:
        client = RawClient(port, timeout=2)
        client.send(get())
        return client.read_response().status == 200
    except (ConnectionError, OSError):
        return False


def test_no_route_is_404_with_log(start_server, examples_built):
    server = start_server(f"/only = {examples_built / 'libsample.so'}\n")
    response = requests.get(server.url + "/elsewhere")
    assert response.status_code == 404
    server.wait_for_log("no route for /elsewhere")
    wait_until(
        lambda: any('"GET /elsewhere HTTP/1.1" 404' in line for line in server.access_lines()),
        what="the 404 access line",
    )


def test_slow_request_does_not_hold_up_others(server):
    """While one connection waits in x-slow: 1000, others are answered (ordering, not timing)."""
    finished = []
    slow = threading.Thread(
        target=lambda: finished.append(
            ("slow", requests.get(server.url, headers={"x-slow": "1000"}).text)
        )
    )
    slow.start()
    wait_until(lambda: _in_flight(server), what="the slow request to start")
    for _ in range(20):
        assert requests.get(server.url).status_code == 200
    finished.append(("fast", None))
    slow.join()
    assert [kind for kind, _ in finished] == ["fast", "slow"]


def _in_flight(server) -> bool:
    # the slow request is in flight once the library is loaded and no access line has it yet
    return "loaded" in server.errors()


def test_ipv6_listen_and_client_address(start_server, examples_built, tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    server = start_server(f"/ = {ECHO}\n", "--address", "::1")
    assert server.port
    with socket.create_connection(("::1", server.port), timeout=5) as sock:
        sock.sendall(get("/", "Connection: close\r\n"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    body = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert body["client"][0] == "::1"
    wait_until(
        lambda: any(line.startswith("[::1]:") for line in server.access_lines()),
        what="an access line with the bracketed IPv6 client",
    )
