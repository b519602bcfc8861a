"""Cloudflare Python Workers, emulated in plain CPython (the `worker:` target).

Worker code imports this package as `workers` (see `install_workers_alias`)
and gets the names and signatures of the real SDK (workerd's `workers`
module): `Response`, `Request`, `WorkerEntrypoint`, `fetch`, `handler`,
`env`, `waitUntil`, and the `DurableObject` / `WorkflowEntrypoint` bases.

    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            self.ctx.waitUntil(log_visit(request.url))
            return Response.json({"hello": self.env.NAME}, headers={"x-by": "flexilib"})

The server side, for the `worker:` handler:

    install_workers_alias()              # before loading worker modules
    with bind_env(env):                  # lets module-level code read workers.env
        module = load(...)
    check_module(module)                 # ValueError: log it, keep the old version
    response, pending = await invoke(module, request, env, "host:port")
    ... send response ...
    await asyncio.gather(*pending, return_exceptions=True)   # ctx.waitUntil work

Not emulated: bindings other than plain variables (KV, D1, R2, Durable
Object stubs, service bindings), `FormData`/`Blob`, WebSocket responses,
`request.cf` metadata (None here).
"""

from flexilib.faas.workers.alias import install_workers_alias
from flexilib.faas.workers.bindings import Context, Env, bind_env, env, waitUntil
from flexilib.faas.workers.body import ArrayBuffer, ReadableStream
from flexilib.faas.workers.entrypoint import (
    DurableObject,
    WorkerEntrypoint,
    WorkflowEntrypoint,
    handler,
)
from flexilib.faas.workers.headers import HeadersInit as Headers
from flexilib.faas.workers.outgoing import fetch
from flexilib.faas.workers.request import Request
from flexilib.faas.workers.response import Response
from flexilib.faas.workers.runner import check_module, invoke

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
    "bind_env",
    "check_module",
    "env",
    "fetch",
    "handler",
    "install_workers_alias",
    "invoke",
    "waitUntil",
]
