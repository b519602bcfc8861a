"""The environment a Lambda function sees, kept private to each function.

Lambda gives every function its own process, so `os.environ` holds that
function's variables and nothing else. flexilib runs many functions in one
process, on several threads at once, so `os.environ` must answer each of them
with its own variables. `function_environment(env)` does that: inside the
`with` block, reads through `os.environ` (and therefore `os.getenv`,
`os.environ.get`, `in`, iteration, `copy()`) see `env` layered over the
process environment, and writes and deletions change `env` only. Outside any
such block `os.environ` behaves exactly as the standard library's.

How: on first use, the class of the existing `os.environ` object is switched
to a subclass of `os._Environ` whose methods first consult a
`contextvars.ContextVar`. Switching the class, rather than replacing the
object, also covers modules that did `from os import environ` before.

Limits, by construction: the overlay lives in the calling thread's context.
Threads a function starts itself see the process environment (Python 3.11
threads do not inherit contextvars), and so do child processes (they get the
C-level environment) and `os.environb`.
"""

from __future__ import annotations

import contextvars
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from flexilib.log import diag

__all__ = ["RESERVED", "function_environment", "lambda_environment", "task_root_gate"]

#: Variables Lambda reserves: a function's configuration cannot set them
#: (AWS Lambda Developer Guide, "Defined runtime environment variables").
RESERVED = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)

# Lambda's rule for configured keys: a letter, then letters, digits or '_', two characters at least.
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]+")

PYTHON_EXECUTION_ENV = f"AWS_Lambda_python{sys.version_info[0]}.{sys.version_info[1]}"


def lambda_environment(
    *,
    function_name: str,
    handler: str,
    task_root: str,
    memory_mb: int,
    region: str,
    extra: Mapping[str, str] | None = None,
    execution_env: str | None = PYTHON_EXECUTION_ENV,
    runtime_api: str | None = None,
) -> dict[str, str]:
    """The variables Lambda defines for a function, plus the configured `extra` ones.

    Values follow the documented ones: version `$LATEST`, log group
    `/aws/lambda/NAME`, a fresh log stream `YYYY/MM/DD/[$LATEST]<32 hex>` (one
    per call: call it once per load, as Lambda makes one per execution
    environment), `TZ=:UTC`, `LANG=en_US.UTF-8`. `execution_env` is
    `AWS_Lambda_pythonX.Y` for in-process functions (None leaves it out, as for
    OS-only custom runtimes); `runtime_api` is the `host:port` given to custom
    runtimes as `AWS_LAMBDA_RUNTIME_API`.

    Deliberately absent: credentials (the process's own, if any, show through),
    `_X_AMZN_TRACE_ID` (per invocation), and `PATH`, `LD_LIBRARY_PATH` and
    `PYTHONPATH`, whose Lambda values name directories of Lambda's image; the
    process's values show through instead.

    Raises ValueError when `extra` names a reserved variable or a key Lambda
    would refuse, as Lambda refuses such a configuration.
    """
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime())
        + uuid.uuid4().hex,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": task_root,
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }
    if execution_env is not None:
        env["AWS_EXECUTION_ENV"] = execution_env
    if runtime_api is not None:
        env["AWS_LAMBDA_RUNTIME_API"] = runtime_api
    for key, value in (extra or {}).items():
        if key in RESERVED:
            raise ValueError(f"environment variable {key} is reserved by Lambda")
        if not _KEY.fullmatch(key):
            raise ValueError(
                f"environment variable name {key!r} is not valid for Lambda "
                "(a letter, then letters, digits or '_', at least two characters)"
            )
        env[key] = str(value)
    return env


# --- per-function os.environ ------------------------------------------------

_overlay: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "flexilib_lambda_environ", default=None
)
_DELETED = object()  # marks a process variable the function deleted
_install_lock = threading.Lock()


class _OverlayEnviron(os._Environ):  # type: ignore[name-defined]
    """`os._Environ` whose reads and writes go to the current function's overlay, if any."""

    __slots__ = ()

    def __getitem__(self, key: str) -> str:
        overlay = _overlay.get()
        if overlay is not None and key in overlay:
            value = overlay[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: str) -> None:
        overlay = _overlay.get()
        if overlay is None:
            super().__setitem__(key, value)
            return
        self.encodekey(key)  # the same type checks as the real environment
        self.encodevalue(value)
        overlay[key] = value

    def __delitem__(self, key: str) -> None:
        overlay = _overlay.get()
        if overlay is None:
            super().__delitem__(key)
            return
        if key not in self:
            raise KeyError(key)
        overlay[key] = _DELETED

    def __iter__(self) -> Iterator[str]:
        overlay = _overlay.get()
        if overlay is None:
            yield from super().__iter__()
            return
        items = list(overlay.items())  # atomic snapshot; another invocation may write
        for key in super().__iter__():
            if key not in overlay:
                yield key
        for key, value in items:
            if value is not _DELETED:
                yield key

    def __len__(self) -> int:
        if _overlay.get() is None:
            return super().__len__()
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        if _overlay.get() is None:
            return super().__repr__()
        return f"environ({dict(self)!r})"


def _install() -> None:
    """Switch `os.environ` to the overlay-aware class; idempotent and thread-safe."""
    with _install_lock:
        if type(os.environ) is os._Environ:  # type: ignore[attr-defined]
            os.environ.__class__ = _OverlayEnviron


class function_environment:  # noqa: N801 - used as a `with` statement, like a function
    """`with function_environment(env):` makes `os.environ` show `env` to this thread of control.

    `env` is the function's own dictionary (from `lambda_environment`); it is
    not copied, so what the function writes into `os.environ` stays in it for
    its next invocation, as it would in a Lambda execution environment. Enter it
    around the module's import (Lambda's init) and around every call, in the
    thread that runs the code. A class rather than a generator: it runs on
    every request.
    """

    __slots__ = ("_env", "_token")

    def __init__(self, env: dict[str, str]) -> None:
        if type(os.environ) is not _OverlayEnviron:
            _install()
        self._env = env
        self._token: contextvars.Token | None = None

    def __enter__(self) -> dict[str, str]:
        self._token = _overlay.set(self._env)
        return self._env

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _overlay.reset(self._token)
            self._token = None

    @staticmethod
    def enter(env: dict[str, str]) -> contextvars.Token:
        """The `with` block's entry without an object, for the per-call path (0.2 us less):
        `leave(token)` ends it."""
        if type(os.environ) is not _OverlayEnviron:
            _install()
        return _overlay.set(env)

    @staticmethod
    def leave(token: contextvars.Token) -> None:
        _overlay.reset(token)


# --- the working directory ----------------------------------------------------


class _TaskRootGate:
    """Lets calls run with their function's folder as the process's working directory.

    Lambda starts a handler in `LAMBDA_TASK_ROOT`, and code opens `data.json`
    or a SQLite file relative to it. The working directory belongs to the
    process, so calls of functions with the same folder run together, and a
    call for another folder waits until they are done. When the last call
    leaves, the server's own directory is restored, so the rest of the server
    does not run in a function's folder. Directories are entered with
    `fchdir` on descriptors kept open (1 us per call for both changes,
    measured, against 3 us for `chdir` by path); functions in different
    folders called at the same time take turns.

    A call waits at most `wait` seconds for its turn: a function that calls
    another function of the same server over HTTP and waits for it would
    otherwise never give the directory up. Past that, the call runs in the
    directory it finds (`enter` returns False) and one line is logged.
    """

    def __init__(self, wait: float = 2.0) -> None:
        self._wait = wait
        self._lock = threading.Lock()
        self._free = threading.Condition(self._lock)
        self._root: str | None = None
        self._active = 0
        self._waiting = 0
        self._home: int | None = None
        self._fds: dict[str, int] = {}

    def refresh(self, root: str) -> None:
        """Open `root` again on the next call (a new version: the folder may be a new one)."""
        with self._lock:
            fd = self._fds.pop(root, None)
            if fd is not None and self._root != root:
                os.close(fd)

    def enter(self, root: str) -> bool:
        """Make `root` the working directory; False when it could not be had in time (then
        do not call `leave`)."""
        with self._lock:
            if self._active and self._root != root:
                deadline = time.monotonic() + self._wait
                while self._active and self._root != root:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        diag(
                            f"{root}: the working directory is {self._root} for calls still "
                            f"running after {self._wait:g}s; this call runs there"
                        )
                        return False
                    self._waiting += 1
                    try:
                        self._free.wait(left)
                    finally:
                        self._waiting -= 1
            self._take(root)
            return True

    def try_enter(self, root: str) -> bool:
        """`enter` without waiting: False at once, nothing entered, when calls for another
        folder hold the directory (a call on the server's loop thread must not wait)."""
        with self._lock:
            if self._active and self._root != root:
                return False
            self._take(root)
            return True

    def _take(self, root: str) -> None:
        """One more call in `root`, the directory free or already `root` (lock held)."""
        if not self._active:
            if self._home is None:
                self._home = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
            fd = self._fds.get(root)
            if fd is None:
                fd = self._fds[root] = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
            os.fchdir(fd)
            self._root = root
        self._active += 1

    def leave(self) -> None:
        with self._lock:
            self._active -= 1
            if not self._active:
                self._root = None
                try:
                    os.fchdir(self._home)
                finally:
                    if self._waiting:  # notify_all is Python code: skip it when nobody waits
                        self._free.notify_all()


task_root_gate = _TaskRootGate()
