"""A bare uvloop + httptools server answering the fixed payload: the ceiling.

It does the least any Python server on this stack can do per request (parse,
write one pre-built response), so its numbers bound what flexilib can reach.
No access log is written: it is the reference, not a competitor.

    python peers/bare.py --port 8080 [--address 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import httptools
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lib.payload import BODY, CONTENT_TYPE, EXTRA_HEADERS, STATUS  # noqa: E402


def _response(keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {STATUS} OK", f"Content-Type: {CONTENT_TYPE}"]
    lines += [f"{name}: {value}" for name, value in EXTRA_HEADERS]
    lines += [
        f"Content-Length: {len(BODY)}",
        "Connection: " + ("keep-alive" if keep_alive else "close"),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + BODY


KEEP_ALIVE = _response(True)
CLOSE = _response(False)


class Protocol(asyncio.Protocol):
    """One connection: feed bytes to the parser, answer each complete message."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        if self.parser.should_keep_alive():
            self.transport.write(KEEP_ALIVE)
        else:
            self.transport.write(CLOSE)
            self.transport.close()


async def serve(address: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Protocol, address, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args()
    uvloop.run(serve(args.address, args.port))


if __name__ == "__main__":
    main()
