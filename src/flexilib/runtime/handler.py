"""The one small interface every TARGET kind implements.

A handler is created from its `HandlerSpec` (cheap, no I/O), then `load()`ed
on first use in a worker thread, then called. Its `mode` tells the
connection layer how to call it:

- ``"sync"``: `call(request) -> Response`, thread-safe. The dispatcher runs it
  inline on the event loop while it is observed to be fast, else on the
  thread pool (see `flexilib.runtime.dispatch`).
- ``"async"``: `await call_async(request) -> Response` on the event loop.
- ``"stream"``: `await stream(request, stream)`; the handler reads the
  request body and writes the response itself through the `Stream`
  (reverse proxy, tunnels). Called as soon as the header section is in.
  `Stream` is all a kind knows of a connection (the HTTP layer implements it).

`close()` releases what `load()` took; it is called once the version has
drained. `watched_files()` names the files whose change means "reload me".
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from flexilib.config import ConfigError, HandlerSpec, Rule
from flexilib.response import Response

if TYPE_CHECKING:
    from flexilib.request import Request

__all__ = [
    "BlockingHandler",
    "Handler",
    "Stream",
    "Tunnel",
    "HandlerError",
    "HandlerLoadError",
    "create_handler",
    "handler_class",
    "number_option",
    "validate_rules",
]


DEFAULT_TIMEOUT = 30.0  # seconds, for kinds that take `timeout=` without one of their own
DEFAULT_QUEUE = 64  # calls of one handler waiting for a pool thread, past its concurrency


class Tunnel(Protocol):
    """The raw client connection after a `101 Switching Protocols`."""

    async def read(self) -> bytes:
        """The next bytes from the client; b"" once it closed."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None:
        """Wait while the client reads slower than we write."""

    def close(self) -> None:
        """Close once what was written has been sent."""


class Stream(Protocol):
    """How a `stream` handler reads its request body and writes its response."""

    started: bool  # a response head has been written
    sent: int  # body bytes written

    @property
    def wants_upgrade(self) -> bool:
        """The request asked for a protocol upgrade (`Connection: Upgrade`)."""

    @property
    def body_complete(self) -> bool:
        """The whole request body has arrived."""

    @property
    def client_closed(self) -> bool:
        """The client's connection is closed or closing: stop producing for it."""

    async def receive(self) -> bytes:
        """The next piece of the request body; b"" at its end; ConnectionResetError if lost."""

    def start(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        reason: str | None = None,
        length: int | None = None,
        body: bytes = b"",
    ) -> None:
        """Write the head (body framed by `length`, else chunked), and the body's first piece."""

    def write(self, data: bytes) -> None: ...

    async def send(self, data: bytes) -> None:
        """Write, then wait while the client reads slower than we write."""

    def abort(self) -> None:
        """End without completing the response: the client sees the connection close."""

    def tunnel(self) -> Tunnel:
        """After a 101: the raw connection."""


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
        #: calls of this handler on the pool at once (None: half the pool), and waiting beyond
        self.concurrency: int | None = None
        self.queue_limit = DEFAULT_QUEUE
        self.gate = None  # the dispatcher's count of them, made on the first pool call

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

    async def stream(self, request: Request, stream: Stream) -> None:
        raise NotImplementedError

    def on_timeout(self, request: Request) -> HandlerError:
        """The error answered when the call for `request` overran `timeout`."""
        return HandlerError(f"{self.spec.target}: timed out after {self.timeout:g}s", 504)

    def close(self) -> None:
        """Release what load() took. Called after the last request finished."""

    def watched_files(self) -> list[Path]:
        """Files whose change should reload this handler."""
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.target}>"


class BlockingHandler(Handler):
    """A `sync` kind whose calls may block a thread: native libraries and Python functions.

    Options: `dispatch=auto|inline|pool`; `timeout=S` (default 30: past it the
    client gets 504; Python code is interrupted, a native call finishes on its
    thread); `concurrency=N` (calls on the pool at once; default half of
    `SERVER_MAX_THREADS`) and `queue=N` (waiting beyond them, default 64; past
    both: 503 with `Retry-After`). See `flexilib.runtime.dispatch`.
    """

    options: ClassVar[frozenset[str]] = frozenset({"dispatch", "timeout", "concurrency", "queue"})

    def __init__(self, spec: HandlerSpec) -> None:
        super().__init__(spec)
        self.timeout = _timeout(spec)
        concurrency = spec.option("concurrency")
        self.concurrency = _count(concurrency, "concurrency", 1) if concurrency else None
        self.queue_limit = _count(spec.option("queue", str(DEFAULT_QUEUE)), "queue", 0)

    @classmethod
    def validate(cls, spec: HandlerSpec) -> None:
        super().validate(spec)
        _timeout(spec)
        if spec.option("concurrency") is not None:
            _count(spec.option("concurrency"), "concurrency", 1)
        _count(spec.option("queue", str(DEFAULT_QUEUE)), "queue", 0)

    def on_timeout(self, request: Request) -> HandlerError:
        return HandlerError(
            f"{self.spec.target}: no answer after {self.timeout:g}s (timeout=): answered 504",
            504,
            Response(b"Gateway Timeout: the handler did not answer in time\n", 504),
        )


def _timeout(spec: HandlerSpec) -> float:
    return number_option(spec.option("timeout", str(DEFAULT_TIMEOUT)), "timeout", 0.001, 86400.0)


def _count(text: str, name: str, low: int) -> int:
    return int(number_option(text, name, low, 100_000, integer=True))


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
    "wasm": ("flexilib.kinds.wasm.handler", "WasmHandler"),
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
