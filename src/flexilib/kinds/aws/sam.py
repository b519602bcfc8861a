"""A SAM application as one target: `sam:template.yaml [param.NAME=value ...]`.

Why one handler rather than one rule per function: proxy.ini rules match
path prefixes in file order, while API Gateway matches whole routes by
specificity (`/users/me` before `/users/{id}` before `/{proxy+}`, a method
before `ANY`) and answers its own 404/403 when none matches. So the
template stays one rule (`config.py` keeps parsing text only, and never
imports a kind), and this handler owns the template's functions and routes
the request to one of them (`routes.RouteTable`). Mount it at `/`: routes are
matched against the whole request path, as API Gateway's stage does.

Each function is a handler of its own kind, built from the template:

- `python3.*` runtimes run in process (`function.LambdaHandler`), each in its
  own module namespace, with its `CodeUri` folder as task root (working
  directory, `LAMBDA_TASK_ROOT`, first on the import path) and its own
  environment;
- `provided`, `provided.al2`, `provided.al2023` run the folder's `bootstrap`
  over the Runtime API (`runtime.LambdaRuntimeHandler`);
- any other runtime loads nothing: its routes answer API Gateway's function
  error (502 / 500) and the load logs one line saying it is not supported.

A function that fails its init answers the same way while the others serve.
Every file of every function folder and the template itself are watched;
any change loads a new version of the application, and the old version
serves until the new one is ready, as for every kind. A function whose
definition and files did not change is not loaded again: the new version
shares the loaded function with the old one (`_Loaded`, counted), so an edit
to one function restarts neither the others' runtimes nor their init.

Each request runs on the thread pool under the longest function timeout
(at most API Gateway's 30 s); a function that overruns its own `Timeout`
gets Lambda's timeout answer once it returns.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from flexilib.config import HandlerSpec
from flexilib.kinds.aws.function import LambdaHandler
from flexilib.kinds.aws.responses import (
    INTEGRATION_TIMEOUT_S,
    function_error_response,
    no_route_response,
)
from flexilib.kinds.aws.routes import Route, RouteTable, parse_route
from flexilib.kinds.aws.runtime import LambdaRuntimeHandler
from flexilib.kinds.aws.template import SamFunction, TemplateError, load_template
from flexilib.log import diag
from flexilib.request import Request
from flexilib.response import Response
from flexilib.runtime.dispatch import NotInline
from flexilib.runtime.handler import Handler, HandlerError, HandlerLoadError
from flexilib.runtime.pyload import folder_files
from flexilib.runtime.slot import file_stamp

__all__ = ["SamHandler", "template_routes"]

_PROVIDED = ("provided", "provided.al2", "provided.al2023")


def _region() -> str:
    return os.environ.get("AWS_REGION", "us-east-1")


def _functions(spec: HandlerSpec) -> list[SamFunction]:
    return load_template(spec.path, spec.prefixed("param."), _region())


def _routes(functions: list[SamFunction], targets: dict, template: str) -> RouteTable:
    """Every Api/HttpApi event as a route to its function; TemplateError when one is bad or
    two are the same route."""
    routes: list[Route] = []
    lines: dict[tuple[str, str], int] = {}
    for function in functions:
        for event in function.events:
            text = event.path if event.path == "$default" else f"{event.method} {event.path}"
            try:
                route = parse_route(text, target=targets.get(function.name), fmt=event.fmt)
            except ValueError as exc:
                raise TemplateError(Path(template), event.line, str(exc)) from None
            first = lines.setdefault((route.method, route.path), event.line)
            if first != event.line:
                raise TemplateError(
                    Path(template), event.line, f"route {route.key} is already on line {first}"
                )
            routes.append(route)
    return RouteTable(routes)


@dataclass
class _Loaded:
    """One loaded function, shared by the application versions that use it."""

    key: tuple[str, str]  # (template, logical id)
    state: tuple  # its definition and the stamps of its folder's files when loaded
    handler: Handler | None
    users: int = 1


_loaded: dict[tuple[str, str], _Loaded] = {}  # the latest load of each function
_loaded_lock = threading.Lock()


def _state(function: SamFunction) -> tuple:
    definition = (
        function.runtime,
        function.handler,
        function.code_dir,
        function.timeout,
        function.memory,
        function.function_name,
        tuple(sorted(function.environment.items())),
    )
    stamps = tuple((file, file_stamp(file)) for file in folder_files(function.code_dir))
    return definition, stamps


def _release(entry: _Loaded) -> None:
    with _loaded_lock:
        entry.users -= 1
        last = entry.users == 0
        if last and _loaded.get(entry.key) is entry:
            del _loaded[entry.key]
    if last and entry.handler is not None:
        entry.handler.close()


def _function_spec(function: SamFunction) -> HandlerSpec:
    """The `lambda:` or `lambda-runtime:` spec one template function stands for."""
    options = [("timeout", f"{function.timeout:g}"), ("memory", str(function.memory))]
    options.append(("name", function.function_name))
    options += [(f"env.{k}", v) for k, v in function.environment.items()]
    if function.runtime in _PROVIDED:
        options.append(("handler", function.handler))
        target = f"lambda-runtime:{function.code_dir}"
        return HandlerSpec("lambda-runtime", target, str(function.code_dir), tuple(options))
    module, _, func = function.handler.rpartition(".")
    file = function.code_dir / (module.replace(".", "/") + ".py")
    target = f"lambda:{file}:{func}"
    return HandlerSpec("lambda", target, str(file), tuple(options), function.code_dir, func)


def _check(function: SamFunction) -> None:
    """What the function's own kind would refuse (reserved variables, bad names), as ValueError."""
    if function.runtime.startswith("python3"):
        if "." not in function.handler:
            raise ValueError(f"{function.name}: Handler must be MODULE.FUNCTION")
        LambdaHandler.validate(_function_spec(function))
    elif function.runtime in _PROVIDED:
        LambdaRuntimeHandler.validate(_function_spec(function))


class SamHandler(Handler):
    """The functions of a SAM template behind API Gateway's routing; see the module docstring."""

    options = frozenset()

    @classmethod
    def validate(cls, spec: HandlerSpec) -> None:
        for name, _ in spec.options:
            if not name.startswith("param."):
                raise ValueError(f"unknown option {name!r} for a sam target (only param.NAME)")
        functions = _functions(spec)
        for function in functions:
            try:
                _check(function)
            except ValueError as exc:
                raise TemplateError(Path(spec.path), function.line, str(exc)) from None
        _routes(functions, {}, spec.path)

    @classmethod
    def describe(cls, spec: HandlerSpec) -> list[str]:
        """One line per route of the template, for `flexilib routes`."""
        return template_routes(spec)

    def __init__(self, spec: HandlerSpec) -> None:
        super().__init__(spec)
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # `flexilib check`: each runtime makes a loop of its own
            self._loop = None
        self._handlers: dict[str, Handler | None] = {}
        self._entries: list[_Loaded] = []
        self._table = RouteTable(())
        self._no_route = no_route_response("2.0")
        self._files: list[Path] = [Path(spec.path)]

    def load(self) -> None:
        try:
            functions = _functions(self.spec)
        except TemplateError as exc:
            raise HandlerLoadError(str(exc)) from None
        files = [Path(self.spec.path)]
        for function in functions:
            self._handlers[function.name] = self._use(function)
            files += folder_files(function.code_dir)
        try:
            self._table = _routes(functions, self._handlers, self.spec.path)
        except TemplateError as exc:
            self.close()
            raise HandlerLoadError(str(exc)) from None
        if any(route.fmt == "1.0" for route in self._table.routes):
            self._no_route = no_route_response("1.0")  # a REST API answers unknown paths 403
        limits = [min(f.timeout, INTEGRATION_TIMEOUT_S[e.fmt]) for f in functions for e in f.events]
        self.timeout = max(limits, default=None)
        self._files = files

    def _use(self, function: SamFunction) -> Handler | None:
        """The loaded function: the one in use when nothing of it changed, else a new load."""
        key, state = (self.spec.path, function.name), _state(function)
        with _loaded_lock:
            entry = _loaded.get(key)
            if entry is not None and entry.handler is not None and entry.state == state:
                entry.users += 1
                self._entries.append(entry)
                return entry.handler
        entry = _Loaded(key, state, self._start(function))
        with _loaded_lock:
            _loaded[key] = entry
        self._entries.append(entry)
        return entry.handler

    def _start(self, function: SamFunction) -> Handler | None:
        """The function's loaded handler, or None when it cannot serve (logged)."""
        where = f"{self.spec.path}: {function.name}"
        if function.runtime.startswith("python3"):
            handler: Handler = LambdaHandler(_function_spec(function))
        elif function.runtime in _PROVIDED:
            handler = LambdaRuntimeHandler(_function_spec(function), self._loop)
        else:
            diag(
                f"{where}: runtime {function.runtime} is not supported yet (python3.* runs in "
                "process, provided.* over the Runtime API); its routes answer a function error"
            )
            return None
        try:
            handler.load()
        except HandlerError as exc:
            diag(f"{where}: init failed, its routes answer a function error: {exc}")
            handler.close()
            return None
        return handler

    def watched_files(self) -> list[Path]:
        return list(self._files)

    def call(self, request: Request) -> Response:
        match = self._table.match(request.method, request.path)
        if match is None:
            return self._no_route
        fmt = match.route.fmt
        handler = match.route.target
        if isinstance(handler, LambdaHandler):
            return handler.invoke(request, fmt, match)
        if isinstance(handler, LambdaRuntimeHandler):
            if self._loop is not None and asyncio._get_running_loop() is self._loop:
                # called inline, on the loop thread: waiting for the loop here would deadlock
                raise NotInline(f"{self.spec.path}: a provided.* function runs from the pool")
            call = handler.invoke_async(request, fmt, match)
            return asyncio.run_coroutine_threadsafe(call, self._loop).result()
        return function_error_response(fmt)

    def on_timeout(self) -> HandlerError:
        fmt = "1.0" if self._no_route.status == 403 else "2.0"
        return HandlerError(
            f"{self.spec.target}: timed out after {self.timeout:g}s",
            response=function_error_response(fmt),
        )

    def close(self) -> None:
        entries, self._entries, self._handlers = self._entries, [], {}
        for entry in entries:
            _release(entry)


def template_routes(spec: HandlerSpec) -> list[str]:
    """`METHOD /path  ->  Function (runtime, payload)` lines for every route, in match order."""
    functions = _functions(spec)
    by_name = {f.name: f for f in functions}
    lines = []
    for route in _routes(functions, {f.name: f.name for f in functions}, spec.path).routes:
        function = by_name[route.target]
        api = "HttpApi" if route.fmt == "2.0" else "Api"
        lines.append(f"{route.key:<32} -> {function.name} ({function.runtime}, {api} {route.fmt})")
    for function in functions:
        for other in function.other_events:
            lines.append(f"{'(not served)':<32} -> {function.name}: {other} event")
    return lines
