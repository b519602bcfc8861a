"""The `workers` module worker code imports: Cloudflare's Python Workers SDK in plain CPython.

Worker code imports this package as `workers` (`kinds/cloudflare/alias.py`)
and gets only the SDK's own names, never the server's internals: it gets the names and signatures of the real SDK (workerd's `workers`
module): `Response`, `Request`, `WorkerEntrypoint`, `fetch`, `handler`,
`env`, `waitUntil`, and the `DurableObject` / `WorkflowEntrypoint` bases.

    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            self.ctx.waitUntil(log_visit(request.url))
            return Response.json({"hello": self.env.NAME}, headers={"x-by": "flexilib"})

The server side (loading a module, calling its entry point) is
`kinds/cloudflare/handler.py` and `runner.py`.

Not emulated: bindings other than plain variables (KV, D1, R2, Durable
Object stubs, service bindings), `FormData`/`Blob`, WebSocket responses,
`request.cf` metadata (None here).
"""

from flexilib.kinds.cloudflare.sdk.bindings import Context, Env, env, waitUntil
from flexilib.kinds.cloudflare.sdk.body import ArrayBuffer, ReadableStream
from flexilib.kinds.cloudflare.sdk.entrypoint import (
    DurableObject,
    WorkerEntrypoint,
    WorkflowEntrypoint,
    handler,
)
from flexilib.kinds.cloudflare.sdk.headers import HeadersInit as Headers
from flexilib.kinds.cloudflare.sdk.outgoing import fetch
from flexilib.kinds.cloudflare.sdk.request import Request
from flexilib.kinds.cloudflare.sdk.response import Response

#: the SDK's name for what `fetch()` resolves to
FetchResponse = Response

__all__ = [
    "ArrayBuffer",
    "Context",
    "DurableObject",
    "Env",
    "FetchResponse",
    "Headers",
    "ReadableStream",
    "Request",
    "Response",
    "WorkerEntrypoint",
    "WorkflowEntrypoint",
    "env",
    "fetch",
    "handler",
    "waitUntil",
]
