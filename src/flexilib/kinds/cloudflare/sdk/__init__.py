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

Also at module level: `wait_until` (the Python spelling of `waitUntil`),
`FormData`, `Blob`, `File` (what `await request.form_data()` gives), and
`patch_env(**values)`, a `with` block in which `env` has these values on top
of the current ones (for tests and scripts that run worker code outside a
request). Worker code can also `import asgi` (`asgi.fetch(app, request, env)`
for FastAPI and other ASGI apps) and `import js` (`console.log`,
`Response.new`), as on Cloudflare.

Not emulated: bindings other than plain variables (KV, D1, R2, Durable
Object stubs, service bindings), WebSocket responses, `request.cf` metadata
(None here).
"""

from flexilib.kinds.cloudflare.sdk.bindings import (
    Context,
    Env,
    env,
    patch_env,
    wait_until,
    waitUntil,
)
from flexilib.kinds.cloudflare.sdk.body import ArrayBuffer, ReadableStream
from flexilib.kinds.cloudflare.sdk.entrypoint import (
    DurableObject,
    WorkerEntrypoint,
    WorkflowEntrypoint,
    handler,
)
from flexilib.kinds.cloudflare.sdk.formdata import Blob, File, FormData
from flexilib.kinds.cloudflare.sdk.headers import HeadersInit as Headers
from flexilib.kinds.cloudflare.sdk.outgoing import fetch
from flexilib.kinds.cloudflare.sdk.request import Request
from flexilib.kinds.cloudflare.sdk.response import Response

#: the SDK's name for what `fetch()` resolves to
FetchResponse = Response

__all__ = [
    "ArrayBuffer",
    "Blob",
    "Context",
    "DurableObject",
    "Env",
    "FetchResponse",
    "File",
    "FormData",
    "Headers",
    "ReadableStream",
    "Request",
    "Response",
    "WorkerEntrypoint",
    "WorkflowEntrypoint",
    "env",
    "fetch",
    "handler",
    "patch_env",
    "waitUntil",
    "wait_until",
]
