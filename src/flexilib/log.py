"""Diagnostics: one line each on standard error (loads, reloads, errors), from any layer.

The request log (standard output) is `flexilib.server.accesslog`.
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["diag", "format_client"]


def diag(message: str) -> None:
    """One diagnostic line on standard error (loads, reloads, errors)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        sys.stderr.write(f"{stamp} flexilib[{os.getpid()}]: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: diagnostics must never kill the server
        pass


def format_client(peer: tuple | None) -> str:
    """`host:port`, with IPv6 hosts bracketed; `-` when the peer is unknown (Unix socket)."""
    if not peer:
        return "-"
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
