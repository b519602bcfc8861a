"""What an orchestrator relies on: a config from a ConfigMap reloaded on its symlink swap, and a
drain delay on SIGTERM during which the server still serves but says it is not ready."""

from __future__ import annotations

import os
import signal
import socket
import threading

import requests
from conftest import REPO, build_library, wait_until

HELLO = REPO / "examples" / "python" / "hello.py"
ECHO = REPO / "tests" / "handlers" / "echo.py"


def _swap(mount, version: str, text: str) -> None:
    """What the kubelet does: write a new timestamped folder, then swap `..data` atomically."""
    folder = mount / f"..{version}"
    folder.mkdir()
    (folder / "proxy.ini").write_text(text)
    link = mount / "..data_tmp"
    link.symlink_to(folder.name)
    os.replace(link, mount / "..data")


def _text(url: str) -> str | None:
    try:
        return requests.get(url, timeout=5).text
    except requests.RequestException:
        return None


def test_config_map_swap_is_reloaded_and_a_bad_one_rejected(start_server, tmp_path):
    mount = tmp_path / "config"
    mount.mkdir()
    _swap(mount, "2026_11_30_10_00_00.1", f"/ = {HELLO}\n")
    (mount / "proxy.ini").symlink_to("..data/proxy.ini")
    server = start_server("", "--config", str(mount / "proxy.ini"), "--watch-config")
    assert _text(server.url + "/").startswith("hello world from Python")

    _swap(mount, "2026_11_30_10_05_00.2", f"/ = {ECHO}\n")
    wait_until(
        lambda: (t := _text(server.url + "/")) and not t.startswith("hello world"),
        what="the new config serving",
    )
    server.wait_for_log(r"config changed: .* validated: 1 routes")

    _swap(mount, "2026_11_30_10_10_00.3", "/ = ftp:nope\n")
    log = server.wait_for_log(r"config changed: config rejected")
    assert "proxy.ini:1: unknown target kind 'ftp:'" in log
    assert not _text(server.url + "/").startswith("hello world")  # the last good one serves
    status = requests.get(server.admin_url + "/status", timeout=5).json()
    assert status["config"]["last_reload"]["result"] == "error"
    assert "unknown target kind" in status["config"]["last_reload"]["error"]
    assert requests.get(server.admin_url + "/readyz", timeout=5).status_code == 200


def test_drain_delay_serves_on_not_ready_then_stops(start_server, tmp_path):
    lib = build_library("stall.c", tmp_path / "libstall.so")
    server = start_server(f"/ = {lib}\n", "--drain-delay", "2")
    mark = tmp_path / "running"
    slow: dict = {}
    thread = threading.Thread(
        target=lambda: slow.update(
            r=requests.get(server.url + "/x?sleep=4000", headers={"x-mark": str(mark)}, timeout=30)
        )
    )
    thread.start()
    wait_until(mark.exists, what="the slow request running")
    server.process.send_signal(signal.SIGTERM)
    server.wait_for_log(r"SIGTERM: not ready; still serving for 2s")
    assert requests.get(server.admin_url + "/readyz", timeout=5).status_code == 503
    # during the delay new connections are still accepted and served
    assert requests.get(server.url + "/x", timeout=5).text == "quick"
    server.wait_for_log(r"stopping on SIGTERM")
    # after it, the listener is closed: new connections are refused
    wait_until(lambda: _refused(server.port), what="new connections refused")
    thread.join(30)
    assert slow["r"].status_code == 200 and slow["r"].text == "slept"  # nothing in flight lost
    assert server.process.wait(30) == 0


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False
