"""AWS Lambda functions run in process: `lambda:FILE.py:FUNC [options]`.

The module is imported once per load (Lambda's init, with the function's
environment in place) and the function is called with the API Gateway event
and a Lambda context for each request. As on Lambda, the function's folder
is its task root: the working directory during its init and calls
(`environment.task_root_gate`), and where its imports are found first, in a
module namespace of its own (`flexilib.runtime.pyload`); the handler module
is named after its file (`app`). The return value goes through the runtime's
JSON marshalling before API Gateway's mapping (`responses.function_response`).
Calls are dispatched as Python handlers' are (`flexilib.runtime.dispatch`): an
exact repeat of a request answered fast runs on the loop thread (`invoke`
says what that takes), anything else on the pool under a deadline, so
`timeout` holds and a runaway function cannot stall the server. The function
sees its own `os.environ` (`faas.aws.environment`), not another function's.

Options: `format=2.0|1.0` (HTTP API / Function URL payload, or REST API
proxy), `timeout=S` (default 3, as Lambda), `memory=MB` (default 128, as
Lambda: reported to the function and checked against the process's peak
memory growth during the call), `name=` (function name; default the file's
stem), `route=` (API Gateway routes, comma-separated, each `METHOD:/path`
or `/path` for ANY, e.g. `route=GET:/users/{id},ANY:/files/{path+}`: fills
`routeKey`/`resource`/`pathParameters` as API Gateway does, and an unmatched
request gets API Gateway's 404 (2.0) or 403 (1.0)), `dispatch=auto|inline|pool`
(where calls run, as for Python handlers), `env.NAME=value`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
import traceback
from asyncio import _get_running_loop, _set_running_loop
from pathlib import Path
from resource import RUSAGE_THREAD, getrusage
from time import monotonic, perf_counter, thread_time
from typing import Any

from flexilib.config import HandlerSpec
from flexilib.kinds.aws.context import ContextTemplate, LambdaContext, function_arn
from flexilib.kinds.aws.environment import (
    function_environment,
    lambda_environment,
    task_root_gate,
)
from flexilib.kinds.aws.events import ACCOUNT_ID, gateway_event
from flexilib.kinds.aws.ids import random_uuid
from flexilib.kinds.aws.responses import (
    INTEGRATION_TIMEOUT_S,
    LambdaResponseError,
    function_error_response,
    function_response,
    no_route_response,
    timeout_response,
)
from flexilib.kinds.aws.routes import RouteMatch, RouteTable, parse_route
from flexilib.log import diag
from flexilib.request import Request
from flexilib.response import Response
from flexilib.runtime.dispatch import DeadlineExceeded, NotInline
from flexilib.runtime.handler import Handler, HandlerError, HandlerLoadError, number_option
from flexilib.runtime.pyload import Namespace, load_function

__all__ = ["LambdaHandler", "route_table", "validate_function_options"]

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
    route_table(spec)


def route_table(spec: HandlerSpec) -> RouteTable | None:
    """The `route=` option's routes, in the target's payload format (None: no option)."""
    text = spec.option("route")
    if text is None:
        return None
    fmt = spec.option("format", "2.0")
    return RouteTable(parse_route(part, fmt=fmt) for part in text.split(",") if part.strip())


class LambdaHandler(Handler):
    takes_env = True
    options = frozenset({"format", "timeout", "memory", "name", "route", "dispatch"})

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
        self.memory = int(spec.option("memory", "128"))
        self.name = spec.option("name", Path(spec.path).stem)
        self._env = _environment(spec)
        self._arn = function_arn(self._env["AWS_REGION"], ACCOUNT_ID, self.name)
        self._contexts = ContextTemplate(self._env, invoked_function_arn=self._arn)
        self._routes = route_table(spec)
        self.task_root = self._env["LAMBDA_TASK_ROOT"]
        self._func = None
        self._namespace: Namespace | None = None
        self._files: list[Path] = [Path(spec.path)]

    def load(self) -> None:
        _ensure_event_loop()
        task_root_gate.refresh(self.task_root)
        entered = task_root_gate.enter(self.task_root)
        try:
            with function_environment(self._env):
                self._func, loaded = load_function(self.spec.path, self.spec.func)
        except HandlerLoadError as exc:  # an init failure: the client gets API Gateway's answer
            response = function_error_response(self.format)
            raise HandlerLoadError(str(exc), response.status, response) from exc
        finally:
            if entered:
                task_root_gate.leave()
        self._namespace = loaded.namespace
        self._files = loaded.files

    def watched_files(self) -> list[Path]:
        return list(self._files)

    def on_timeout(self, request: Request) -> HandlerError:
        """Lambda's timeout record, naming the invocation the function saw as `aws_request_id`."""
        return HandlerError(
            f"{self.name}: {_request_id(request)}: Task timed out after {self.timeout:.2f} seconds",
            response=timeout_response(self.format, self.function_timeout),
        )

    def call(self, request: Request) -> Response:
        match = None
        if self._routes is not None:
            match = self._routes.match(request.method, request.path)
            if match is None:
                return no_route_response(self.format)
        return self.invoke(request, self.format, match)

    def invoke(self, request: Request, fmt: str, match: RouteMatch | None) -> Response:
        """One invocation for `request` through API Gateway with payload `fmt`, route `match`.

        On a pool thread the call runs under the dispatcher's deadline. On the
        server's loop thread (an exact repeat of a request seen fast, see
        `flexilib.runtime.dispatch`) it must not wait: when calls of a function
        in another folder hold the working directory it raises `NotInline`
        and the dispatcher runs it on the pool; and the server's running loop
        is hidden for the call, so code that runs an event loop of its own
        (`asyncio.run`, Mangum) finds none running and the thread's own loop
        current, as on a pool thread. That loop stays the thread's current
        one after the call (setting the server's back cost 0.3 us a call):
        while the server's loop runs, `asyncio.get_event_loop()` there answers
        the running loop, whatever the current one is.

        The call's `Response.elapsed` is what the dispatcher judges it by: its
        wall time, unless the kernel preempted the thread and the call never
        blocked; then the time off the CPU was other processes', and its thread
        CPU time is used. With the wall time alone, wrk sharing the 2-core
        bench machine preempted inline calls of a 40 us function for 2-16 ms,
        demoting the bench's one request class 12 times in a 5 s run (each time
        up to 1,024 pool calls to come back): most requests ran on the pool.
        """
        server_loop = _get_running_loop()  # set: called inline, on the server's loop thread
        if server_loop is None:
            entered = task_root_gate.enter(self.task_root)
        elif task_root_gate.try_enter(self.task_root):
            entered = True
        else:
            raise NotInline(f"{self.task_root}: the working directory is another function's")
        try:
            return self._invoke(request, fmt, match, server_loop)
        finally:
            if entered:
                task_root_gate.leave()

    def _invoke(
        self,
        request: Request,
        fmt: str,
        match: RouteMatch | None,
        server_loop: asyncio.AbstractEventLoop | None,
    ) -> Response:
        event = gateway_event(request, fmt, match)
        context = self._contexts.new(_request_id(request), monotonic() + self.timeout)
        before = getrusage(RUSAGE_THREAD)  # its ru_maxrss is the process's peak
        start, cpu_start = perf_counter(), thread_time()
        if server_loop is not None:
            _set_running_loop(None)
        _ensure_event_loop()
        namespace = self._namespace.enter()
        environment = function_environment.enter(self._env)
        if _views[0] is not self._namespace:
            _forget_resolved_views(self._namespace)
        try:
            result = self._func(event, context)
        except DeadlineExceeded:
            # the dispatcher's interruption at the deadline (it has answered already)
            _drop_event_loop()  # it may hold the interrupted function's tasks
            raise
        except Exception as exc:  # noqa: BLE001 - a function error, reported as Lambda does
            diag(f"{self.name}: {context.aws_request_id}: {_error_json(exc, context)}")
            return function_error_response(fmt)
        finally:
            function_environment.leave(environment)
            Namespace.leave(namespace)
            if server_loop is not None:
                _set_running_loop(server_loop)
        wall = perf_counter() - start
        after = getrusage(RUSAGE_THREAD)
        response = self._response(result, fmt, context, (after.ru_maxrss - before.ru_maxrss) >> 10)
        if after.ru_nvcsw == before.ru_nvcsw and after.ru_nivcsw != before.ru_nivcsw:
            # preempted, and never blocked: the time off the CPU was other processes'
            response.elapsed = thread_time() - cpu_start
        else:
            response.elapsed = wall
        return response

    def _response(self, result: Any, fmt: str, context: LambdaContext, grown_mb: int) -> Response:
        """What API Gateway answers for a call that returned `result`, its memory `grown_mb`."""
        if context.get_remaining_time_in_millis() <= 0:  # overran, not interrupted (a C call)
            diag(f"{self.name}: {context.aws_request_id}: Task timed out")
            return timeout_response(fmt, self.function_timeout)
        if grown_mb > self.memory:
            diag(
                f"{self.name}: {context.aws_request_id}: Runtime exited: memory grew by "
                f"{grown_mb} MB, over memory={self.memory}"
            )
            return function_error_response(fmt)
        try:
            return function_response(result, fmt)
        except LambdaResponseError as exc:
            diag(f"{self.name}: {context.aws_request_id}: malformed Lambda proxy response: {exc}")
            return function_error_response(fmt)


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
            request.request_id = random_uuid()
        return request.request_id


_views: list[Namespace | None] = [None]  # the namespace whose views Django has resolved


def _forget_resolved_views(namespace: Namespace) -> None:
    """Let a reloaded Django project route to its new views.

    Django resolves `ROOT_URLCONF` once per process and keeps the view
    functions it found (`django.urls.get_resolver` is cached), so a new
    version's `views.py` would never be called. `clear_url_caches()` is
    Django's own way to drop them (its test tools call it); it runs when a
    call comes from another namespace (version) than the last one, so old and
    new versions each resolve their own views while the old one drains.
    Django's settings stay those of the first load: one Django project per
    server process.
    """
    _views[0] = namespace
    urls = sys.modules.get("django.urls")
    if urls is not None:
        urls.clear_url_caches()


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
