"""Cloudflare Python Workers (`worker:FILE.py [env.NAME=value ...]`).

The module is loaded like any Python handler (fresh module per version,
sibling imports watched), with `import workers` resolving to flexilib's
emulation unless a working `workers` package is installed. Work handed to
`ctx.waitUntil` runs after the response has been written, as on Cloudflare
where it may outlive the response; its failures are logged.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from flexilib.config import HandlerSpec
from flexilib.kinds.cloudflare.alias import install_workers_alias
from flexilib.kinds.cloudflare.runner import check_module, invoke
from flexilib.kinds.cloudflare.sdk.bindings import Env, bind_env
from flexilib.log import diag
from flexilib.request import Request
from flexilib.response import Response
from flexilib.runtime.handler import Handler, HandlerLoadError
from flexilib.runtime.pyload import Namespace, load_module

__all__ = ["CloudflareHandler"]


class CloudflareHandler(Handler):
    mode = "async"
    takes_env = True
    options = frozenset()

    def __init__(self, spec: HandlerSpec) -> None:
        super().__init__(spec)
        self._module = None
        self._namespace: Namespace | None = None
        self._env = Env(spec.prefixed("env."))
        self._files: list[Path] = [Path(spec.path)]
        self._background: set[asyncio.Task] = set()

    def load(self) -> None:
        if not install_workers_alias():
            diag("an importable `workers` package is installed: worker modules use it")
        with bind_env(self._env):
            loaded = load_module(self.spec.path)
        try:
            check_module(loaded.module)
        except ValueError as exc:
            raise HandlerLoadError(f"cannot load {self.spec.path}: {exc}") from None
        self._module = loaded.module
        self._namespace = loaded.namespace
        self._files = loaded.files

    def watched_files(self) -> list[Path]:
        return list(self._files)

    async def call_async(self, request: Request) -> Response:
        host = (request.header(b"host") or b"localhost").decode("latin-1")
        token = self._namespace.enter()
        try:
            response, pending = await invoke(self._module, request, self._env, host)
        finally:
            Namespace.leave(token)
        if pending:
            with self._namespace:  # the task copies the context: its work runs in the namespace
                task = asyncio.get_running_loop().create_task(self._after(pending))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return response

    async def _after(self, pending: list) -> None:
        """ctx.waitUntil work: started once the response has been written."""
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, BaseException):
                diag(f"{self.spec.path}: waitUntil task failed: {result!r}")
