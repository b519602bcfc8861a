"""The Lambda Runtime API answers only the function's runtime: another local user gets nothing.

The attack from the hardening review: a process running as `nobody` finds the
Runtime API's port (a new listener in /proc/net/tcp), then takes
`/invocation/next` before the real runtime (stealing the request, its
`Authorization` header included, and answering it), or posts `init/error` to
kill the runtime. Here the attacker is a child of the test, switched to
`nobody`; it knows the port (read from the runtime's environment).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
import requests
from conftest import REPO, wait_until

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


def _runtime_api(task_root: Path) -> str | None:
    """AWS_LAMBDA_RUNTIME_API of a runtime process whose task root is `task_root`."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        values = dict(item.split(b"=", 1) for item in environ if b"=" in item)
        if values.get(b"LAMBDA_TASK_ROOT") == str(task_root).encode():
            return values.get(b"AWS_LAMBDA_RUNTIME_API", b"").decode() or None
    return None


def _as_nobody(address: str, request: bytes) -> bytes:
    """Send `request` to `address` from a process of user `nobody`; what it read back."""
    host, port = address.rsplit(":", 1)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the attacker: no imports past this point (nobody cannot read the venv)
        answer = b""
        try:
            os.close(reader)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            attacker = socket.socket()
            attacker.settimeout(5)
            attacker.connect((host, int(port)))
            attacker.sendall(request)
            while chunk := attacker.recv(65536):
                answer += chunk
        except OSError as exc:
            answer += b"[" + type(exc).__name__.encode() + b"]"
        finally:
            os.write(writer, answer or b"[nothing]")
            os._exit(0)
    os.close(writer)
    data = b""
    while chunk := os.read(reader, 65536):
        data += chunk
    os.close(reader)
    os.waitpid(pid, 0)
    return data


def test_another_user_can_neither_take_an_invocation_nor_kill_the_runtime(start_server, tmp_path):
    function = tmp_path / "fn"
    function.mkdir()
    for name in ("bootstrap", "function.py"):
        shutil.copy2(REPO / "tests" / "lambda_runtime" / name, function / name)
    server = start_server(f"/fn = lambda-runtime:{function}\n")
    assert requests.get(server.url + "/fn", timeout=30).status_code == 200
    address = wait_until(lambda: _runtime_api(function), what="the runtime's API address")

    stolen = _as_nobody(
        address, b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    killed = _as_nobody(
        address,
        b"POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    )
    assert b"HTTP/1.1" not in stolen and b"HTTP/1.1" not in killed  # not a byte of HTTP
    server.wait_for_log(rf"Runtime API {address}: refused a connection from uid {NOBODY}", count=2)
    # the real runtime still answers, with the client's request and its credentials
    answer = requests.get(
        server.url + "/fn", headers={"Authorization": "Bearer secret"}, timeout=30
    )
    assert answer.status_code == 200
    assert "init error" not in server.errors().lower()
