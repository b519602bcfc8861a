"""The `asgi` module of Python Workers: `await asgi.fetch(app, request, env)`.

Cloudflare's way to serve an ASGI application (FastAPI, Starlette) from a
worker, as on its FastAPI page:

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            import asgi
            return await asgi.fetch(app, request, self.env)

The request becomes one ASGI 3 `http` scope (with `scope["env"]` holding the
worker's env, as Cloudflare sets it), the body is given in one
`http.request` message, and what the app sends becomes a `workers.Response`.
The app's lifespan `startup` runs once per app object before its first
request, as Cloudflare's adapter runs it.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any
from urllib.parse import unquote, urlsplit

from flexilib.kinds.cloudflare.sdk.request import Request
from flexilib.kinds.cloudflare.sdk.response import Response

__all__ = ["fetch"]

_started: weakref.WeakKeyDictionary[Any, asyncio.Future] = weakref.WeakKeyDictionary()


async def _lifespan(app: Any) -> None:
    """Run the app's lifespan startup; an app without lifespan support is fine."""
    messages: asyncio.Queue = asyncio.Queue()
    await messages.put({"type": "lifespan.startup"})
    ready = asyncio.get_running_loop().create_future()

    async def receive() -> dict:
        return await messages.get()

    async def send(message: dict) -> None:
        if message["type"] == "lifespan.startup.complete" and not ready.done():
            ready.set_result(None)
        elif message["type"] == "lifespan.startup.failed" and not ready.done():
            ready.set_exception(RuntimeError(message.get("message", "lifespan startup failed")))

    async def run() -> None:
        try:
            await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
        except Exception:  # noqa: BLE001 - no lifespan support: the app raises on the scope
            pass
        if not ready.done():
            ready.set_result(None)

    asyncio.ensure_future(run())  # lives on, waiting for a shutdown that never comes
    await ready


async def fetch(app: Any, request: Request, env: Any = None, ctx: Any = None) -> Response:
    """Serve `request` with the ASGI application `app`; the app's response as a Response."""
    started = _started.get(app)
    if started is None:
        started = _started[app] = asyncio.ensure_future(_lifespan(app))
    await started
    url = urlsplit(request.url)
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()]
    port = url.port or (443 if url.scheme == "https" else 80)
    client = request.headers.get("cf-connecting-ip") or "127.0.0.1"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": str(request.method),
        "scheme": url.scheme,
        "path": unquote(url.path) or "/",
        "raw_path": (url.path or "/").encode("latin-1"),
        "query_string": url.query.encode("latin-1"),
        "root_path": "",
        "headers": headers,
        "client": (client, 0),
        "server": (url.hostname or "localhost", port),
        "env": env,
        "state": {},
    }
    body = await request.bytes()
    sent_body = False

    async def receive() -> dict:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects while the app runs
        return {"type": "http.disconnect"}

    status = 500
    response_headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers.extend(
                (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                for k, v in message.get("headers", [])
            )
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await app(scope, receive, send)
    data = b"".join(chunks)
    return Response(
        data if data or status not in (204, 304) else None, status, "", response_headers
    )
