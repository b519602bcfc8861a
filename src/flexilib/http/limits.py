"""Connection-layer limits and timeouts, with the defaults the README documents."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 16 * 1024  # request line + header section -> 431
    max_body_bytes: int = 10 * 1024 * 1024  # buffered handler kinds -> 413
    header_timeout: float = 10.0  # to receive the header section -> 408
    body_timeout: float = 30.0  # between two pieces of a body -> 408
    keepalive_timeout: float = 15.0  # idle keep-alive connection -> closed
    max_connections: int = 10_000  # open connections per worker
    max_pipeline: int = 32  # parsed requests waiting on one connection before reading pauses
