"""AWS Lambda custom runtimes: `lambda-runtime:PATH [options]`.

PATH is a `bootstrap` executable (or the folder holding one), as in a
function package for an OS-only runtime (`provided.al2023`). flexilib runs
it as child processes that speak the Lambda Runtime API, one process per
concurrent invocation (`faas.aws.runtime_pool`), each with its own Runtime
API endpoint on 127.0.0.1 (`faas.aws.runtime_api`). Every HTTP request
becomes one invocation with the same API Gateway event and response mapping
as the in-process `lambda:` kind.

Loading a version starts one runtime and waits for its init (its first
`/next`), so a bootstrap or function that fails its init leaves the previous
version serving, and the first request after a reload meets a warm runtime.
Further runtimes start when requests arrive while every runtime is busy.
Every file in the bootstrap's folder (the function package; not
`__pycache__`, dot files, `*.pyc`, `*.log`) is watched: an edit loads a new
version with new processes, and the old ones are stopped once drained.

Environment of the processes: flexilib's own, with the variables Lambda
sets for a custom runtime on top (`AWS_LAMBDA_RUNTIME_API`, `_HANDLER`,
`LAMBDA_TASK_ROOT`, `AWS_LAMBDA_FUNCTION_NAME`, ...; no
`AWS_EXECUTION_ENV`, as for OS-only runtimes), the route's `env.` options,
and `FLEXILIB_PYTHON`: the interpreter running flexilib, so a bootstrap can
run `"$FLEXILIB_PYTHON" -m awslambdaric "$_HANDLER"` with the packages
installed next to flexilib. The working directory is the bootstrap's folder
(`LAMBDA_TASK_ROOT`, as `/var/task` on Lambda).

Options: `format=2.0|1.0`, `timeout=S` (default 3, as Lambda),
`memory=MB` (default 128: reported to the function, and a runtime whose
peak memory exceeds it fails its invocation and is replaced),
`concurrency=N` (default 4: processes per flexilib worker; Lambda's own
default is the account's unreserved concurrency, far more than a
development machine wants), `name=` (default: the bootstrap's folder name),
`handler=` (`_HANDLER`, default `function.handler`), `route=` (API Gateway
routes, as for `lambda:`), `env.NAME=value`.

A function whose init fails (the bootstrap exits, or never asks for its
first event) answers what API Gateway gives then: 502 `{"message": "Internal
server error"}` (1.0) or 500 `{"message":"Internal Server Error"}` (2.0).

A request header `X-Amz-Client-Context` (base64 JSON, as the Lambda Invoke
API takes it) is passed to the runtime as `Lambda-Runtime-Client-Context`,
so code reading `context.client_context` can be tried locally.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import re
import sys
import uuid
from pathlib import Path

from flexilib.config import HandlerSpec
from flexilib.kinds.aws.context import function_arn
from flexilib.kinds.aws.environment import lambda_environment
from flexilib.kinds.aws.events import ACCOUNT_ID, gateway_event
from flexilib.kinds.aws.function import route_table, validate_function_options
from flexilib.kinds.aws.responses import (
    INTEGRATION_TIMEOUT_S,
    LambdaResponseError,
    function_error_response,
    integration_timeout_response,
    map_result_v1,
    map_result_v2,
    no_route_response,
    timeout_response,
)
from flexilib.kinds.aws.routes import RouteMatch
from flexilib.kinds.aws.runtime_api import Outcome
from flexilib.kinds.aws.runtime_pool import INIT_TIMEOUT_S, RuntimePool
from flexilib.log import diag
from flexilib.request import Request
from flexilib.response import Response
from flexilib.runtime.handler import Handler, HandlerLoadError, number_option
from flexilib.runtime.pyload import folder_files

__all__ = ["LambdaRuntimeHandler", "package_files"]

DEFAULT_CONCURRENCY = "4"
DEFAULT_HANDLER = "function.handler"
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]")


class LambdaRuntimeHandler(Handler):
    mode = "async"
    takes_env = True
    options = frozenset({"format", "timeout", "memory", "concurrency", "name", "handler", "route"})

    @classmethod
    def validate(cls, spec: HandlerSpec) -> None:
        super().validate(spec)
        validate_function_options(spec, _function_name(spec))
        number_option(spec.option("concurrency", DEFAULT_CONCURRENCY), "concurrency", 1, 1000, True)
        handler = spec.option("handler", DEFAULT_HANDLER)
        if not handler or any(c.isspace() for c in handler):
            raise ValueError("handler must be a non-empty name without spaces")
        _environment(spec, "127.0.0.1:0")  # reserved or invalid env.* names are errors

    def __init__(self, spec: HandlerSpec, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """`loop`: the server's event loop, when the caller is not running on it (SAM)."""
        super().__init__(spec)
        self.bootstrap, _ = _package(spec)
        self.format = spec.option("format", "2.0")
        self.function_timeout = number_option(spec.option("timeout", "3"), "timeout", 0.001, 900.0)
        self.memory = int(spec.option("memory", "128"))
        self.concurrency = int(spec.option("concurrency", DEFAULT_CONCURRENCY))
        self.name = _function_name(spec)
        self._routes = route_table(spec)
        region = os.environ.get("AWS_REGION", "us-east-1")
        self._arn = function_arn(region, ACCOUNT_ID, self.name)
        self._files: list[Path] = [self.bootstrap]
        self._pool: RuntimePool | None = None
        try:  # slots create handlers on the server's loop; load() runs on a pool thread
            self._loop = loop or asyncio.get_running_loop()
            self._private_loop = False
        except RuntimeError:  # `flexilib check`: no server, a loop of its own to start on
            self._loop = asyncio.new_event_loop()
            self._private_loop = True

    def load(self) -> None:
        bootstrap = self.bootstrap
        if not bootstrap.is_file():
            raise HandlerLoadError(f"cannot load {bootstrap}: no such file")
        if not os.access(bootstrap, os.X_OK):
            raise HandlerLoadError(f"cannot load {bootstrap}: not executable (chmod +x)")
        pool = RuntimePool(
            self._loop,
            argv=[str(bootstrap)],
            cwd=str(bootstrap.parent),
            environment=lambda address: _process_environment(self.spec, address),
            label=self.name,
            arn=self._arn,
            concurrency=self.concurrency,
            timeout=self.function_timeout,
            memory_mb=self.memory,
        )
        try:
            if self._private_loop:
                self._loop.run_until_complete(pool.start())
            else:
                started = asyncio.run_coroutine_threadsafe(pool.start(), self._loop)
                try:
                    started.result(INIT_TIMEOUT_S + 5)
                except TimeoutError:  # the loop itself is stuck: give up, start() cleans up
                    started.cancel()
                    raise HandlerLoadError(f"{self.name}: init did not finish") from None
        except HandlerLoadError as exc:
            # the function's own init failed: answer what API Gateway gives for that
            response = function_error_response(self.format)
            raise HandlerLoadError(str(exc), response.status, response) from None
        self._pool = pool
        self._files = package_files(bootstrap)

    def watched_files(self) -> list[Path]:
        return list(self._files)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._private_loop:
            self._loop.close()

    async def call_async(self, request: Request) -> Response:
        match = None
        if self._routes is not None:
            match = self._routes.match(request.method, request.path)
            if match is None:
                return no_route_response(self.format)
        return await self.invoke_async(request, self.format, match)

    async def invoke_async(self, request: Request, fmt: str, match: RouteMatch | None) -> Response:
        """One invocation for `request` through API Gateway with payload `fmt`, route `match`."""
        event = gateway_event(request, fmt, match)
        request_id = str(uuid.uuid4())
        outcome = await self._pool.invoke(
            request_id,
            json.dumps(event).encode(),
            limit=INTEGRATION_TIMEOUT_S[fmt],
            client_context=_client_context(request),
        )
        return self._answer(request_id, outcome, fmt)

    def _answer(self, request_id: str, outcome: Outcome, fmt: str) -> Response:
        """The HTTP response API Gateway would give for this outcome; failures are logged."""
        kind = outcome.kind
        if kind == Outcome.RESPONSE:
            try:
                result = json.loads(outcome.body) if outcome.body else None
                return (map_result_v1 if fmt == "1.0" else map_result_v2)(result)
            except ValueError as exc:  # not JSON, or LambdaResponseError
                why = exc if isinstance(exc, LambdaResponseError) else "the response is not JSON"
                diag(f"{self.name}: {request_id}: malformed Lambda proxy response: {why}")
                return function_error_response(fmt)
        diag(f"{self.name}: {request_id}: {outcome.describe()}")
        if kind == Outcome.TIMEOUT:
            return timeout_response(fmt, self.function_timeout)
        if kind == Outcome.GATEWAY_TIMEOUT:
            return integration_timeout_response(fmt)
        return function_error_response(fmt)


def _package(spec: HandlerSpec) -> tuple[Path, Path]:
    """(bootstrap, its folder): PATH names the bootstrap, or the folder holding `bootstrap`."""
    path = Path(spec.path).absolute()
    if path.is_dir():
        return path / "bootstrap", path
    return path, path.parent


def _function_name(spec: HandlerSpec) -> str:
    """The `name=` option, else the package folder's name made into a valid function name."""
    name = spec.option("name")
    if name is not None:
        return name
    return _NOT_NAME.sub("-", _package(spec)[1].name)[:64] or "function"


def _environment(spec: HandlerSpec, runtime_api: str) -> dict[str, str]:
    """The variables Lambda sets for this function's custom runtime."""
    return lambda_environment(
        function_name=_function_name(spec),
        handler=spec.option("handler", DEFAULT_HANDLER),
        task_root=str(_package(spec)[1]),
        memory_mb=int(spec.option("memory", "128")),
        region=os.environ.get("AWS_REGION", "us-east-1"),
        extra=spec.prefixed("env."),
        execution_env=None,
        runtime_api=runtime_api,
    )


def _process_environment(spec: HandlerSpec, runtime_api: str) -> dict[str, str]:
    """One runtime process's environment: flexilib's, Lambda's on top, and FLEXILIB_PYTHON.

    Built per process, as Lambda makes a log stream per execution environment.
    """
    env = dict(os.environ)
    env.update(_environment(spec, runtime_api))
    env["FLEXILIB_PYTHON"] = sys.executable
    return env


def _client_context(request: Request) -> str | None:
    """`X-Amz-Client-Context` (base64 JSON) as the JSON text the Runtime API passes on.

    Re-encoded on one ASCII line, so it fits in a header whatever the client sent.
    """
    raw = request.header(b"x-amz-client-context")
    if raw is None:
        return None
    try:
        return json.dumps(json.loads(base64.b64decode(raw, validate=True)))
    except (binascii.Error, ValueError):
        return None


def package_files(bootstrap: Path) -> list[Path]:
    """The bootstrap and the files of its package (its folder, recursively, at most 1000)."""
    return [bootstrap] + [f for f in folder_files(bootstrap.parent) if f != bootstrap]
