"""Python handler modules: `handle_request(request)`, plain or `async`."""

from __future__ import annotations

import inspect
from pathlib import Path

from flexilib.request import Request
from flexilib.response import Response
from flexilib.runtime.handler import BlockingHandler, HandlerError
from flexilib.runtime.pyload import Namespace, load_function

__all__ = ["PythonHandler", "to_response"]


def to_response(result: object, where: str) -> Response:
    """A handler's return value -> Response (`bytes`/`str` are a 200 text/plain)."""
    if isinstance(result, Response):
        return result
    if isinstance(result, (bytes, str)):
        return Response(result)
    raise HandlerError(f"{where} returned {type(result).__name__}, not Response, bytes or str")


class PythonHandler(BlockingHandler):
    """A `.py` file; the function is `handle_request` unless `python:FILE.py:FUNC` names one."""

    def __init__(self, spec) -> None:
        super().__init__(spec)
        self._func = None
        self._namespace: Namespace | None = None
        self._files: list[Path] = [Path(spec.path)]

    def load(self) -> None:
        func, loaded = load_function(self.spec.path, self.spec.func)
        self._func, self._namespace, self._files = func, loaded.namespace, loaded.files
        self.mode = "async" if inspect.iscoroutinefunction(func) else "sync"

    def watched_files(self) -> list[Path]:
        return list(self._files)

    def call(self, request: Request) -> Response:
        token = self._namespace.enter()
        try:
            return to_response(self._func(request), self.spec.path)
        finally:
            Namespace.leave(token)

    async def call_async(self, request: Request) -> Response:
        token = self._namespace.enter()
        try:
            return to_response(await self._func(request), self.spec.path)
        finally:
            Namespace.leave(token)
