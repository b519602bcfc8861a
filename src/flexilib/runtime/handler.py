"""The one small interface every TARGET kind implements.

A handler is created from its `HandlerSpec` (cheap, no I/O), then `load()`ed
on first use in a worker thread, then called. Its `mode` tells the
connection layer how to call it:

- ``"sync"``: `call(request) -> Response`, thread-safe. The dispatcher runs it
  inline on the event loop while it is observed to be fast, else on the
  thread pool (see `flexilib.runtime.dispatch`).
- ``"async"``: `await call_async(request) -> Response` on the event loop.
- ``"stream"``: `await stream(request, exchange)`; the handler reads the
  request body and writes the response itself through the `Exchange`
  (reverse proxy, tunnels). Called as soon as the header section is in.

`close()` releases what `load()` took; it is called once the version has
drained. `watched_files()` names the files whose change means "reload me".
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from flexilib.config import ConfigError, HandlerSpec, Rule

if TYPE_CHECKING:
    from flexilib.http.exchange import Exchange
    from flexilib.request import Request
    from flexilib.response import Response

__all__ = [
    "Handler",
    "HandlerError",
    "HandlerLoadError",
    "create_handler",
    "handler_class",
    "number_option",
    "validate_rules",
]


class HandlerError(Exception):
    """A handler failed while answering: the client gets `response`, else a bare `status`."""

    status = 500

    def __init__(
        self, message: str, status: int | None = None, response: Response | None = None
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.response = response


class HandlerLoadError(HandlerError):
    """The handler's code could not be loaded (missing file, symbol, import error)."""

    status = 503


class Handler:
    """Base class; see the module docstring for the contract."""

    #: how to call this handler; a kind may set it per instance in load()
    mode: str = "sync"
    #: seconds a `sync` call may take before `on_timeout()` answers (None: no limit)
    timeout: float | None = None
    #: option names this kind accepts (besides `env.*` where `takes_env`)
    options: ClassVar[frozenset[str]] = frozenset({"dispatch"})
    takes_env: ClassVar[bool] = False

    def __init__(self, spec: HandlerSpec) -> None:
        self.spec = spec
        #: `auto`, `inline` or `pool`: how the dispatcher runs a sync handler
        self.dispatch = spec.option("dispatch", "auto")
        #: the dispatcher's per-request-class timings (see flexilib.runtime.dispatch)
        self.classes: dict = {}

    @classmethod
    def validate(cls, spec: HandlerSpec) -> None:
        """Raise ValueError for an option this kind does not take or a bad value."""
        for name, value in spec.options:
            if name.startswith("env.") and cls.takes_env:
                continue
            if name not in cls.options:
                raise ValueError(f"unknown option {name!r} for a {spec.kind} target")
            if name == "dispatch" and value not in ("auto", "inline", "pool"):
                raise ValueError("dispatch must be auto, inline or pool")

    @classmethod
    def describe(cls, spec: HandlerSpec) -> list[str]:
        """Lines `flexilib routes` prints under the rule (a SAM template's routes)."""
        return []

    def load(self) -> None:
        """Load the code. Runs in a worker thread; raise HandlerLoadError on failure."""

    def call(self, request: Request) -> Response:
        raise NotImplementedError

    async def call_async(self, request: Request) -> Response:
        raise NotImplementedError

    async def stream(self, request: Request, exchange: Exchange) -> None:
        raise NotImplementedError

    def on_timeout(self) -> HandlerError:
        """The error answered when a call overran `timeout`."""
        return HandlerError(f"{self.spec.target}: timed out after {self.timeout:g}s", 504)

    def close(self) -> None:
        """Release what load() took. Called after the last request finished."""

    def watched_files(self) -> list[Path]:
        """Files whose change should reload this handler."""
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.target}>"


def number_option(text: str, name: str, low: float, high: float, integer: bool = False) -> float:
    """A numeric option's value, or ValueError naming the option and its range."""
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={text!r} is out of range ({low:g}..{high:g})")
    return value


#: kind name (as config.py assigns it) -> (module, class). Imported on first use only,
#: so a server that serves native libraries never pays for the FaaS or proxy code.
KINDS = {
    "native": ("flexilib.kinds.native.handler", "NativeHandler"),
    "python": ("flexilib.kinds.python", "PythonHandler"),
    "lambda": ("flexilib.kinds.aws.function", "LambdaHandler"),
    "lambda-runtime": ("flexilib.kinds.aws.runtime", "LambdaRuntimeHandler"),
    "worker": ("flexilib.kinds.cloudflare.handler", "CloudflareHandler"),
    "proxy": ("flexilib.kinds.proxy.handler", "ProxyHandler"),
    "sam": ("flexilib.kinds.aws.sam", "SamHandler"),
}


def handler_class(kind: str) -> type[Handler]:
    """The Handler subclass for a kind; ValueError when the kind is not available."""
    try:
        module_name, class_name = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown target kind {kind!r}") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ValueError(f"target kind {kind!r} is not available in this build") from None
        raise
    return getattr(module, class_name)


def create_handler(spec: HandlerSpec) -> Handler:
    return handler_class(spec.kind)(spec)


def validate_rules(rules: list[Rule], path: Path | str) -> list[Rule]:
    """Check every rule's options with its kind; ConfigError naming the file and line."""
    for rule in rules:
        try:
            handler_class(rule.spec.kind).validate(rule.spec)
        except ValueError as exc:
            raise ConfigError(path, rule.line, str(exc)) from None
    return rules
