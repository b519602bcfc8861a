"""A WebSocket echo upstream for the proxy tests (the `websockets` library's own server).

Run: `python wsecho.py`; it prints `port N` once listening. Every message is
sent back as received; the handshake's request path and `X-Forwarded-For`
are sent first, so a test can see what the proxy forwarded.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import serve


async def echo(websocket) -> None:
    request = websocket.request
    await websocket.send(f"{request.path} {request.headers.get('X-Forwarded-For')}")
    async for message in websocket:
        await websocket.send(message)


async def main() -> None:
    async with serve(echo, "127.0.0.1", 0, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"port {port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
