"""`env` and `ctx`: what a worker gets besides the request.

`Env` carries the route's `env.NAME=value` options as string attributes. A
name the route does not set raises AttributeError, as reading a missing
binding from the real (JS-proxied) env does; `getattr(env, "NAME", default)`
works on both.

`Context` is the JS `ExecutionContext`: `waitUntil(awaitable)` (also spelled
`wait_until`) and `passThroughOnException()`. Awaitables handed to
`waitUntil` while the handler runs are kept, not started, and given back to
the server by `invoke()` to run once the response is on its way. Awaitables
handed over after that (from inside such a task) start at once.

The SDK also exposes the running worker's `env` and `waitUntil` at module
level (`from workers import env, waitUntil`). Here they follow a context
variable that `invoke()` sets for the request and its waitUntil tasks, and
that `bind_env()` sets around a module's import so its top-level code can
read `env` as it can on Cloudflare.

On Cloudflare a coroutine given to `waitUntil` becomes a JS promise and
starts at once, running beside the rest of the handler; flexilib starts it
after the handler returned. Both finish before the worker's context ends.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flexilib.log import diag

__all__ = [
    "Context",
    "Env",
    "bind_env",
    "env",
    "in_scope",
    "patch_env",
    "waitUntil",
    "wait_until",
]

Scope = tuple["Env", "Context | None"]

_current: ContextVar[Scope] = ContextVar("flexilib_worker_scope")
_background: set[asyncio.Future[Any]] = set()


class Env:
    """A worker's bindings: the route's `env.NAME=value` options, as str attributes."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        for name, value in variables.items():
            setattr(self, name, str(value))

    def __repr__(self) -> str:
        # names only: values are often secrets and this ends up in logs
        return f"Env({', '.join(sorted(vars(self)))})"


class Context:
    """The `ctx` of one request (the JS ExecutionContext)."""

    def __init__(self, env: Env) -> None:
        self._env = env
        self._deferred: list[Awaitable[Any]] | None = []

    def waitUntil(self, awaitable: Awaitable[Any]) -> None:  # the JS name
        """Keep `awaitable` running past the response: the server awaits it after sending."""
        if not inspect.isawaitable(awaitable):
            raise TypeError(
                f"waitUntil() takes an awaitable (coroutine, task, future), "
                f"not {type(awaitable).__name__}"
            )
        if self._deferred is not None:
            self._deferred.append(awaitable)
        else:
            _start(awaitable, (self._env, self))

    wait_until = waitUntil

    def passThroughOnException(self) -> None:  # the JS name
        """Accepted and ignored.

        On Cloudflare it makes an uncaught exception fall through to the origin
        server behind the worker. A flexilib worker route has no origin
        behind it, so an exception answers 500 (and is logged) either way.
        """

    def _release(self) -> list[Awaitable[Any]]:
        """The deferred awaitables, each set to run in this request's scope; later ones start."""
        pending, self._deferred = self._deferred or [], None
        scope = (self._env, self)
        return [in_scope(awaitable, scope) for awaitable in pending]

    def _discard(self) -> None:
        """The handler failed: drop the deferred work, closing coroutines that never started."""
        pending, self._deferred = self._deferred or [], None
        for awaitable in pending:
            if inspect.iscoroutine(awaitable):
                awaitable.close()


async def in_scope(awaitable: Awaitable[Any], scope: Scope) -> Any:
    """Await `awaitable` with `workers.env` / `workers.waitUntil` bound to `scope`."""
    token = _current.set(scope)
    try:
        return await awaitable
    finally:
        _current.reset(token)


def _start(awaitable: Awaitable[Any], scope: Scope) -> None:
    task = asyncio.ensure_future(in_scope(awaitable, scope))
    _background.add(task)  # a strong reference until it is done
    task.add_done_callback(_finished)


def _finished(task: asyncio.Future[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        diag(f"worker waitUntil task failed: {type(exc).__name__}: {exc}")


def _scope() -> Scope:
    scope = _current.get(None)
    if scope is None:
        raise RuntimeError(
            "workers.env and workers.waitUntil are only available while flexilib runs a "
            "worker (a request, its waitUntil tasks, or a module import under bind_env())"
        )
    return scope


class _CurrentEnv:
    """`workers.env`: the env of the worker being run, like the real module's global `env`."""

    __slots__ = ()

    def __getattr__(self, name: str) -> str:
        return getattr(_scope()[0], name)

    def __repr__(self) -> str:
        scope = _current.get(None)
        return repr(scope[0]) if scope else "<workers.env: no worker running>"


env = _CurrentEnv()


def waitUntil(awaitable: Awaitable[Any]) -> None:  # the name `cloudflare:workers` exports
    """`ctx.waitUntil` of the request being served."""
    ctx = _scope()[1]
    if ctx is None:
        raise RuntimeError("workers.waitUntil needs a request: call it while handling one")
    ctx.waitUntil(awaitable)


wait_until = waitUntil  # the Python spelling the SDK also exports


@contextmanager
def patch_env(**values: str) -> Iterator[Env]:
    """`with patch_env(NAME="value"):` gives `workers.env` these values over the current ones."""
    scope = _current.get(None)
    base = vars(scope[0]) if scope else {}
    patched = Env({**base, **values})
    token = _current.set((patched, scope[1] if scope else None))
    try:
        yield patched
    finally:
        _current.reset(token)


@contextmanager
def bind_env(variables: Env | Mapping[str, str]) -> Iterator[Env]:
    """Bind `workers.env` for the block, e.g. around the import of a worker module."""
    bound = variables if isinstance(variables, Env) else Env(variables)
    token = _current.set((bound, None))
    try:
        yield bound
    finally:
        _current.reset(token)
