"""WebAssembly handlers: `wasm:FILE.wasm [timeout=S] [memory=MB] [env.NAME=V] [dir=HOST:GUEST]`.

The module is a WASI preview 1 command run as WAGI runs it (see `wagi`):
one fresh instance per request, the request in its environment and on its
stdin, a CGI response on its stdout; stderr lines go to the server log,
prefixed with the route. The module is untrusted: it sees only its own
variables and the `dir=` mounts (read-only), and the engine stops it at its
time and memory limits (see `sandbox`). Failures are answered, never raised
into the worker: trap or non-zero exit 500, malformed CGI output 502, time
limit 504, each with one log line.

Calls always run on the thread pool (`dispatch` is `pool`): a run takes
around half a millisecond, past the dispatcher's inline budget, and the
engine's own deadline, not the dispatcher's, ends a runaway instance.
"""

from __future__ import annotations

from pathlib import Path

from flexilib.config import HandlerSpec
from flexilib.kinds.wasm.wagi import CgiError, cgi_environ, parse_cgi
from flexilib.log import diag
from flexilib.request import Request
from flexilib.response import Response
from flexilib.runtime.handler import Handler, HandlerError, HandlerLoadError, number_option

__all__ = ["WasmHandler"]


def _mounts(spec: HandlerSpec) -> list[tuple[str, str]]:
    """`dir=HOST:GUEST` options (repeatable) -> [(absolute host dir, guest path)]."""
    mounts = []
    for name, value in spec.options:
        if name != "dir":
            continue
        host, colon, guest = value.rpartition(":")
        if not colon or not host or not guest:
            raise ValueError(f"dir={value!r} must be HOSTDIR:GUESTDIR")
        path = Path(host) if Path(host).is_absolute() else spec.base_dir / host
        mounts.append((str(path), guest))
    return mounts


class WasmHandler(Handler):
    """One module version: compiled at load, instantiated afresh for every request."""

    takes_env = True
    options = frozenset({"timeout", "memory", "dir"})

    @classmethod
    def validate(cls, spec: HandlerSpec) -> None:
        super().validate(spec)
        number_option(spec.option("timeout", "10"), "timeout", 0.001, 3600.0)
        number_option(spec.option("memory", "128"), "memory", 1, 4096, integer=True)
        _mounts(spec)

    def __init__(self, spec: HandlerSpec) -> None:
        super().__init__(spec)
        self.dispatch = "pool"
        self.limit = number_option(spec.option("timeout", "10"), "timeout", 0.001, 3600.0)
        self.memory = int(spec.option("memory", "128"))
        self.mounts = _mounts(spec)
        self.env = spec.prefixed("env.")
        self._sandbox = None

    def load(self) -> None:
        try:
            from flexilib.kinds.wasm.sandbox import Sandbox
        except ImportError as exc:
            raise HandlerLoadError(
                f"{self.spec.target}: wasmtime is not installed ({exc})"
            ) from None
        import wasmtime

        for host, _ in self.mounts:
            if not Path(host).is_dir():
                raise HandlerLoadError(f"{self.spec.target}: dir {host} is not a directory")
        try:
            self._sandbox = Sandbox(
                self.spec.path,
                timeout=self.limit,
                memory_mb=self.memory,
                env=self.env,
                dirs=self.mounts,
            )
        except (OSError, wasmtime.WasmtimeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc).split("\n", 1)[0]
            raise HandlerLoadError(f"{self.spec.target}: cannot load: {reason}") from None

    def watched_files(self) -> list[Path]:
        return [Path(self.spec.path)]

    def call(self, request: Request) -> Response:
        route = request.route_prefix
        outcome = self._sandbox.run(cgi_environ(request, route), request.body)
        where = route.decode("latin-1") or self.spec.target
        if outcome.stderr:
            for line in outcome.stderr.decode("utf-8", "replace").splitlines():
                diag(f"{where}: {line}")
        if outcome.error is not None:
            raise HandlerError(f"{self.spec.target}: {outcome.error}", outcome.status)
        try:
            return parse_cgi(outcome.stdout)
        except CgiError as exc:
            raise HandlerError(f"{self.spec.target}: bad CGI response: {exc}", 502) from None
