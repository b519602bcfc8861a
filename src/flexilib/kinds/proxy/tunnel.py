"""After `101 Switching Protocols`: bytes both ways until either side closes.

Each direction waits for its reader to keep up (the client's write buffer
one way, the upstream's the other), so a tunnel costs two small buffers.
There is no idle timeout: a WebSocket may sit quiet for as long as its ends
like. (A client that reads nothing of what is sent to it is still dropped at
the connection's send timeout.)
"""

from __future__ import annotations

import asyncio

from flexilib.kinds.proxy.connection import UpstreamConnection, UpstreamError
from flexilib.runtime.handler import Tunnel

__all__ = ["run_tunnel"]


async def run_tunnel(tunnel: Tunnel, upstream: UpstreamConnection) -> None:
    """Pump until either end closes, then close the other (after what it was sent)."""
    upward = asyncio.get_running_loop().create_task(_client_to_upstream(tunnel, upstream))
    try:
        while True:
            data = await upstream.read(timed=False)
            if not data:
                break
            tunnel.write(data)
            await tunnel.drain()
    except UpstreamError:
        pass  # the upstream broke off: same as closing
    finally:
        upward.cancel()
        upstream.close()
        tunnel.close()


async def _client_to_upstream(tunnel: Tunnel, upstream: UpstreamConnection) -> None:
    try:
        while True:
            data = await tunnel.read()
            if not data:
                break
            upstream.write(data)
            await upstream.drain(timed=False)
    except (ConnectionResetError, UpstreamError):
        pass  # the client went away, or the upstream did: either way the tunnel is over
    upstream.close()  # ends the upstream's side, which ends run_tunnel
