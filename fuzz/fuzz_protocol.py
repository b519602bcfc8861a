"""Fuzz target: bytes from a client into `HttpProtocol`, through a fake transport.

The input is split into pieces (as a network would deliver it); some are
answered at once, some streamed, and the clock jumps between pieces so the
timeouts run too. A crash is any exception escaping the protocol, or output
that is not an HTTP/1.1 response. Run with `make fuzz` (README "Security").
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))

with atheris.instrument_imports():
    from test_protocol import App, Clock, FakeTransport

    from flexilib.http.connections import Connections
    from flexilib.http.protocol import HttpProtocol
    from flexilib.settings import Limits

LOOP = asyncio.new_event_loop()
LIMITS = Limits(max_header_bytes=2048, max_body_bytes=4096, max_pipeline=4)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    stream = fdp.ConsumeBool()
    clock = Clock()
    connections = Connections(LIMITS, clock)
    protocol = HttpProtocol(App(stream=stream), connections, LOOP)
    transport = FakeTransport()
    protocol.connection_made(transport)
    while fdp.remaining_bytes() and not transport.closed:
        piece = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 512))
        protocol.data_received(piece)
        action = fdp.ConsumeIntInRange(0, 7)
        if action == 0:
            clock.now += fdp.ConsumeIntInRange(0, 70)
            connections.tick()
        elif action == 1:
            protocol.pause_writing()
        elif action == 2:
            protocol.resume_writing()
    LOOP.run_until_complete(asyncio.sleep(0))  # streamed exchanges' tasks get their turn
    protocol.connection_lost(None)
    out = bytes(transport.out)
    if out and not out.startswith(b"HTTP/1.1 "):
        raise AssertionError(f"not an HTTP response: {out[:80]!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
