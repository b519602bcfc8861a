"""A worker whose event loop stops ticking is killed and replaced by the master (--worker-timeout)."""

from __future__ import annotations

import socket

import requests
from conftest import REPO, build_library, wait_until

HELLO = REPO / "examples" / "python" / "hello.py"


def test_worker_stuck_in_an_inline_call_is_replaced(start_server, tmp_path):
    lib = build_library("spin.c", tmp_path / "libspin.so")
    # dispatch=inline: the call runs on the event loop itself, as a class promoted inline would
    server = start_server(f"/loop = {lib} dispatch=inline\n/ = {HELLO}\n", "--worker-timeout", "2")
    assert requests.get(server.url + "/loop/ok", timeout=5).text == "fine"
    stuck = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    stuck.sendall(b"GET /loop/spin HTTP/1.1\r\nHost: x\r\n\r\n")
    log = server.wait_for_log(r"unresponsive: its event loop has not run for \d+s", timeout=15)
    assert "--worker-timeout 2" in log
    # the library it was stuck in is quarantined, and the worker replaced at once
    server.wait_for_log(rf"killed by SIGKILL inside {lib}: quarantined for 5s")
    server.wait_for_log(r"worker 0 \(pid \d+\) killed by SIGKILL .*restarting now")
    server.wait_for_log(r"worker 0 started", count=2)
    # the client of the stuck request sees its connection closed (or reset), not a hang
    try:
        assert stuck.recv(1024) == b""
    except ConnectionResetError:
        pass
    stuck.close()
    answer = wait_until(lambda: _get(server.url + "/"), what="the replacement answering")
    assert answer.startswith("hello world from Python")
    quarantined = requests.get(server.url + "/loop/ok", timeout=5)
    assert quarantined.status_code == 503 and "Retry-After" in quarantined.headers


def _get(url: str) -> str | None:
    try:
        return requests.get(url, timeout=2).text
    except requests.RequestException:
        return None
