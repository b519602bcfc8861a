"""AWS Lambda functions run in process: `lambda:FILE.py:FUNC [options]`.

The module is imported once per load (Lambda's init, with the function's
environment in place) and the function is called with the API Gateway event
and a Lambda context for each request. Calls run on the thread pool under a
deadline (see `flexilib.runtime.dispatch`), so `timeout` holds and a runaway
function cannot stall the server. The function sees its own `os.environ`
(`faas.aws.environment`), not another function's.

Options: `format=2.0|1.0` (HTTP API / Function URL payload, or REST API
proxy), `timeout=S` (default 3, as Lambda), `memory=MB` (default 128, as
Lambda: reported to the function and checked against the process's peak
memory growth during the call), `name=` (function name; default the file's
stem), `env.NAME=value`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import threading
import traceback
import uuid
from pathlib import Path

from flexilib.config import HandlerSpec
from flexilib.kinds.aws.context import LambdaContext, function_arn, new_context
from flexilib.kinds.aws.environment import function_environment, lambda_environment
from flexilib.kinds.aws.events import ACCOUNT_ID, gateway_event
from flexilib.kinds.aws.responses import (
    INTEGRATION_TIMEOUT_S,
    LambdaResponseError,
    function_error_response,
    map_result_v1,
    map_result_v2,
    timeout_response,
)
from flexilib.log import diag
from flexilib.request import Request
from flexilib.response import Response
from flexilib.runtime.dispatch import DeadlineExceeded
from flexilib.runtime.handler import Handler, HandlerError, number_option
from flexilib.runtime.pyload import load_function

__all__ = ["LambdaHandler"]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_id_lock = threading.Lock()
_thread = threading.local()  # per pool thread: the event loop Lambda code finds there


def validate_function_options(spec: HandlerSpec, name: str) -> None:
    """The options both Lambda kinds take: format, timeout and memory as Lambda bounds them."""
    if spec.option("format", "2.0") not in ("2.0", "1.0"):
        raise ValueError("format must be 2.0 or 1.0")
    number_option(spec.option("timeout", "3"), "timeout", 0.001, 900.0)
    number_option(spec.option("memory", "128"), "memory", 128, 10240, integer=True)
    if not _NAME.fullmatch(name):
        raise ValueError("name must be 1-64 letters, digits, '-' or '_'")


class LambdaHandler(Handler):
    takes_env = True
    options = frozenset({"format", "timeout", "memory", "name"})

    @classmethod
    def validate(cls, spec: HandlerSpec) -> None:
        super().validate(spec)
        validate_function_options(spec, spec.option("name", Path(spec.path).stem) or "")
        _environment(spec)  # reserved or invalid env.* names are errors, as Lambda says

    def __init__(self, spec: HandlerSpec) -> None:
        super().__init__(spec)
        self.format = spec.option("format", "2.0")
        self.function_timeout = number_option(spec.option("timeout", "3"), "timeout", 0.001, 900.0)
        self.timeout = min(self.function_timeout, INTEGRATION_TIMEOUT_S[self.format])
        self.dispatch = "pool"  # always under its deadline, as Lambda runs it
        self.memory = int(spec.option("memory", "128"))
        self.name = spec.option("name", Path(spec.path).stem)
        self._env = _environment(spec)
        self._arn = function_arn(self._env["AWS_REGION"], ACCOUNT_ID, self.name)
        self._map = map_result_v1 if self.format == "1.0" else map_result_v2
        self._func = None
        self._files: list[Path] = [Path(spec.path)]

    def load(self) -> None:
        _ensure_event_loop()
        with function_environment(self._env):
            self._func, self._files = load_function(self.spec.path, self.spec.func)

    def watched_files(self) -> list[Path]:
        return list(self._files)

    def on_timeout(self, request: Request) -> HandlerError:
        """Lambda's timeout record, naming the invocation the function saw as `aws_request_id`."""
        return HandlerError(
            f"{self.name}: {_request_id(request)}: Task timed out after {self.timeout:.2f} seconds",
            response=timeout_response(self.format, self.function_timeout),
        )

    def call(self, request: Request) -> Response:
        event = gateway_event(request, self.format)
        context = new_context(
            self._env,
            timeout_s=self.timeout,
            invoked_function_arn=self._arn,
            aws_request_id=_request_id(request),
        )
        before = _peak_kb()
        _ensure_event_loop()
        try:
            with function_environment(self._env):
                result = self._func(event, context)
        except DeadlineExceeded:
            # the dispatcher's interruption at the deadline (it has answered already)
            _drop_event_loop()  # it may hold the interrupted function's tasks
            raise
        except Exception as exc:  # noqa: BLE001 - a function error, reported as Lambda does
            diag(f"{self.name}: {context.aws_request_id}: {_error_json(exc, context)}")
            return function_error_response(self.format)
        grown = (_peak_kb() - before) // 1024
        if grown > self.memory:
            diag(
                f"{self.name}: {context.aws_request_id}: Runtime exited: memory grew by "
                f"{grown} MB, over memory={self.memory}"
            )
            return function_error_response(self.format)
        try:
            return self._map(result)
        except LambdaResponseError as exc:
            diag(f"{self.name}: {context.aws_request_id}: malformed Lambda proxy response: {exc}")
            return function_error_response(self.format)


def _environment(spec: HandlerSpec) -> dict[str, str]:
    path = Path(spec.path)
    return lambda_environment(
        function_name=spec.option("name", path.stem),
        handler=f"{path.stem}.{spec.func}",
        task_root=str(path.parent),
        memory_mb=int(spec.option("memory", "128")),
        region=os.environ.get("AWS_REGION", "us-east-1"),
        extra=spec.prefixed("env."),
    )


def _request_id(request: Request) -> str:
    """The request's invocation id, made once: by the call, or by a timeout that came first.

    The call (a pool thread) and the timeout (the loop thread) may both reach
    here for one request; the lock makes them agree on one id.
    """
    with _id_lock:
        if request.request_id is None:
            request.request_id = str(uuid.uuid4())
        return request.request_id


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _ensure_event_loop() -> None:
    """Give the calling pool thread a current event loop, as Lambda's handler thread has one.

    Lambda runs a handler on the main thread, where `asyncio.get_event_loop()`
    works; on a pool thread it raises, which breaks adapters that call it
    (Mangum does, per invocation). One loop per thread, made on first use and
    set again on every call, since `asyncio.run()` in a function leaves none.
    """
    loop = getattr(_thread, "loop", None)
    if loop is None or loop.is_closed():
        loop = _thread.loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)


def _drop_event_loop() -> None:
    loop = getattr(_thread, "loop", None)
    _thread.loop = None
    if loop is not None and not loop.is_running():
        loop.close()


def _error_json(exc: BaseException, context: LambdaContext) -> str:
    """The error record the Lambda Python runtime logs for an unhandled exception."""
    return json.dumps(
        {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "requestId": context.aws_request_id,
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
    )
