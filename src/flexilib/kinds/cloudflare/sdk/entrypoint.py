"""The entry point base classes and the `handler` decorator of the workers SDK.

`class Default(WorkerEntrypoint)` with `fetch(self, request)` is the current
convention; the runtime builds one instance per request as
`Default(ctx, env)` (the SDK's argument order, the same as the JS class) and
calls `fetch(request)`. `DurableObject` and `WorkflowEntrypoint` are here so
modules that define them beside `Default` import cleanly; flexilib routes
requests to `Default` (or `on_fetch`) only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flexilib.kinds.cloudflare.sdk.bindings import Context, Env

__all__ = ["DurableObject", "WorkerEntrypoint", "WorkflowEntrypoint", "handler"]

F = TypeVar("F", bound=Callable[..., Any])


class WorkerEntrypoint:
    """Base class of a Worker Entrypoint: `self.ctx` and `self.env` are set per request."""

    def __init__(self, ctx: Context, env: Env) -> None:
        self.ctx = ctx
        self.env = env


class DurableObject:
    """Base class of a Durable Object (importable; not served by flexilib)."""

    def __init__(self, ctx: Any, env: Env) -> None:
        self.ctx = ctx
        self.env = env


class WorkflowEntrypoint:
    """Base class of a Workflow Entrypoint (importable; not served by flexilib)."""

    def __init__(self, ctx: Any, env: Env) -> None:
        self.ctx = ctx
        self.env = env


def handler(func: F) -> F:
    """The SDK's `@handler` for `on_fetch`: returns `func` unchanged.

    On Cloudflare it converts the JS request and env passed to `on_fetch`
    into the SDK's Python types. flexilib passes those types already.
    """
    return func
