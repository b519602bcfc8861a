"""A worker whose event loop stops ticking is killed and replaced by the master (--worker-timeout)."""

from __future__ import annotations

import socket

import requests
from conftest import build_library, wait_until


def test_worker_stuck_in_an_inline_call_is_replaced(start_server, tmp_path):
    lib = build_library("spin.c", tmp_path / "libspin.so")
    # dispatch=inline: the call runs on the event loop itself, as a class promoted inline would
    server = start_server(f"/ = {lib} dispatch=inline\n", "--worker-timeout", "2")
    assert requests.get(server.url + "/ok", timeout=5).text == "fine"
    stuck = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    stuck.sendall(b"GET /spin HTTP/1.1\r\nHost: x\r\n\r\n")
    log = server.wait_for_log(r"unresponsive: its event loop has not run for \d+s", timeout=15)
    assert "--worker-timeout 2" in log
    server.wait_for_log(r"worker 0 \(pid \d+\) killed by SIGKILL .*restarting now")
    server.wait_for_log(r"worker 0 started", count=2)
    # the client of the stuck request sees its connection closed (or reset), not a hang
    try:
        assert stuck.recv(1024) == b""
    except ConnectionResetError:
        pass
    stuck.close()
    answer = wait_until(lambda: _get(server.url + "/ok"), what="the replacement answering")
    assert answer == "fine"


def _get(url: str) -> str | None:
    try:
        return requests.get(url, timeout=2).text
    except requests.RequestException:
        return None
