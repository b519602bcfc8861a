"""Running one request through a worker module: the part of workerd flexilib plays.

`check_module(module)` says at load time which entry point a module has, or
raises ValueError with a message fit for the log. `invoke(...)` builds the
worker's Request, Env and Context, calls the entry point and converts its
Response; it returns the awaitables given to `ctx.waitUntil`, not yet
started, for the server to await after the response is sent. Await them as
`asyncio.gather(*pending, return_exceptions=True)`: like the JS runtime's
`Promise.allSettled`, one failing does not stop the others.

Entry points, as the Python Workers runtime finds them:
- a class `Default` deriving from `WorkerEntrypoint`: one instance per
  request, `Default(ctx, env)`, then `await instance.fetch(request)`;
- otherwise a top-level `on_fetch(request, env, ctx)`, called with only as
  many of those arguments as it takes (`on_fetch(request)` is fine), as the
  runtime's relaxed call does.
Either may be a plain or an `async` function.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from types import ModuleType
from typing import Any

from flexilib.kinds.cloudflare.sdk.bindings import Context, Env, _current
from flexilib.kinds.cloudflare.sdk.request import Request
from flexilib.kinds.cloudflare.sdk.response import Response
from flexilib.request import Request as FlexiRequest
from flexilib.response import Response as FlexiResponse

__all__ = ["check_module", "invoke"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _module_name(module: ModuleType) -> str:
    return getattr(module, "__file__", None) or module.__name__


def check_module(module: ModuleType) -> str:
    """The entry point `invoke` will call (`"Default.fetch"` or `"on_fetch"`); else ValueError."""
    default = getattr(module, "Default", None)
    if default is not None:
        is_entrypoint = isinstance(default, type) and any(
            base.__name__ == "WorkerEntrypoint" for base in default.__mro__
        )
        if not is_entrypoint or not callable(getattr(default, "fetch", None)):
            raise ValueError(
                f"{_module_name(module)}: `Default` must be a class deriving from "
                "workers.WorkerEntrypoint with a `fetch(self, request)` method"
            )
        return "Default.fetch"
    if callable(getattr(module, "on_fetch", None)):
        return "on_fetch"
    raise ValueError(
        f"{_module_name(module)} is not a Python Worker: it defines neither "
        "`class Default(WorkerEntrypoint)` with `async def fetch(self, request)` "
        "nor a top-level `async def on_fetch(request, env, ctx)`"
    )


@functools.lru_cache(maxsize=256)
def _arity(func: Callable[..., Any]) -> int:
    """How many of (request, env, ctx) `func` takes positionally."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # no signature to read: pass everything
        return 3
    count = 0
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return 3
        if parameter.kind in _POSITIONAL:
            count += 1
    return min(count, 3)


def _call(module: ModuleType, request: Request, env: Env, ctx: Context) -> Any:
    if check_module(module) == "Default.fetch":
        return module.Default(ctx, env).fetch(request)
    on_fetch = module.on_fetch
    return on_fetch(*(request, env, ctx)[: _arity(on_fetch)])


async def invoke(
    module: ModuleType,
    request: FlexiRequest,
    env_vars: Env | Mapping[str, str],
    host: str,
) -> tuple[FlexiResponse, list[Awaitable[Any]]]:
    """Answer `request` with the worker in `module`; see the module docstring.

    `env_vars` is the route's `env.` options (pass one `Env` built at load time
    to give every request the same env object, as Cloudflare does). `host` is
    the server's `host:port`, used when the request has no Host header.
    Errors raised by the worker propagate; its waitUntil work is then dropped.
    """
    env = env_vars if isinstance(env_vars, Env) else Env(env_vars)
    ctx = Context(env)
    token = _current.set((env, ctx))
    try:
        result = _call(module, Request.from_flexilib(request, host), env, ctx)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Response):
            raise TypeError(
                "the worker's fetch handler did not return a workers.Response "
                f"(it returned {type(result).__name__})"
            )
        converted = result.to_flexilib()
    except BaseException:
        ctx._discard()
        raise
    finally:
        _current.reset(token)
    return converted, ctx._release()
