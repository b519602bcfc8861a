"""Diagnostics: one line each on standard error (loads, reloads, errors), from any layer.

The request log (standard output) is `flexilib.server.accesslog`. Each line
is one `write(2)` on the file descriptor, not through `sys.stderr`'s
buffer: lines of the master and its workers never interleave mid-line.
`--log-format json` (`set_json()`) makes each line a JSON object.
"""

from __future__ import annotations

import json
import os
import time

__all__ = ["diag", "format_client", "set_json"]

_json = False


def set_json(enabled: bool) -> None:
    """Write diagnostics as JSON objects (`time`, `pid`, `message`) from now on."""
    global _json
    _json = enabled


def diag(message: str) -> None:
    """One diagnostic line on standard error (loads, reloads, errors)."""
    now = time.time()
    if _json:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        record = {
            "time": f"{stamp}.{int(now % 1 * 1000):03d}Z",
            "pid": os.getpid(),
            "message": message,
        }
        line = json.dumps(record) + "\n"
    else:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(now))} flexilib[{os.getpid()}]: {message}\n"
    data = line.encode("utf-8", "backslashreplace")
    try:
        while data:
            data = data[os.write(2, data) :]
    except OSError:  # stderr closed or full: diagnostics must never kill the server
        pass


def format_client(peer: tuple | None) -> str:
    """`host:port`, with IPv6 hosts bracketed; `-` when the peer is unknown (Unix socket)."""
    if not peer:
        return "-"
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
