"""Runtime processes for `lambda-runtime:`: started, scaled, timed, restarted and stopped.

Each runtime process is one Lambda execution environment: its own Runtime
API endpoint (`runtime_api.RuntimeApi`), one invocation at a time. The pool
follows Lambda's scaling: an event goes to a runtime that is waiting for
one; when none is, a new runtime is started (a cold start), up to
`concurrency`; past that, events wait in line. One difference, to save
cold starts in a local server: a runtime that has just answered and is
about to ask for the next event counts as coming (for 50 ms), so a steady
stream of sequential requests stays on one warm runtime.

Failure handling, as Lambda does it:

- the function's timeout passes: the client gets the timeout answer, and the
  runtime is killed and replaced (its state may be anything by then);
- the runtime dies during an invocation: that invocation fails
  (`Runtime.ExitError`), and the runtime is replaced at once when it had
  finished its init before (so a runtime that cannot start is not restarted
  in a loop: the next event starts one);
- a runtime's peak memory is over `memory` when it answers: the invocation
  fails (`Runtime.OutOfMemory`) and the runtime is replaced;
- init fails (`/init/error`, or the process exits before asking for an
  event): the events waiting for it fail when no other runtime is left.

Processes run in their own session (so a kill reaches whatever the
bootstrap started), with standard output and error read through a pipe and
written to flexilib's standard error, each line prefixed with the function
name and pid. Exits are noticed through a pidfd and reaped at once, so no
zombie is left behind.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable

from flexilib.kinds.aws.runtime_api import IDLE, RUNNING, STARTING, Invocation, Outcome, RuntimeApi
from flexilib.log import diag
from flexilib.runtime.handler import HandlerLoadError

__all__ = ["INIT_TIMEOUT_S", "RuntimePool", "RuntimeProcess"]

#: Lambda's limit on an on-demand init phase.
INIT_TIMEOUT_S = 10.0
#: A runtime that dies idle this soon after its init, without serving, is not replaced at once.
_STABLE_S = 1.0
#: How long an event waits for a runtime that has answered to ask again, before one is started.
_RUNNING_GRACE_S = 0.05
_LINE_BREAKS = re.compile(rb"\r\n|\r|\n")
_MAX_LINE = 64 * 1024
_STOPPED = Outcome(
    Outcome.EXIT, error_type="Runtime.Unavailable", message="the function was stopped"
)


class RuntimeProcess:
    """One runtime process: own session, output prefixed onto stderr, reaped through a pidfd."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        label: str,
        on_exit: Callable[[], None],
    ) -> None:
        """Start `argv`; OSError when it cannot be executed."""
        self.loop = loop
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
        self.pid = self.popen.pid
        self.returncode: int | None = None
        self._prefix = f"{label}[{self.pid}]: "
        self._on_exit = on_exit
        self._partial = b""
        self._out = self.popen.stdout.fileno()
        os.set_blocking(self._out, False)
        self._pidfd = os.pidfd_open(self.pid)
        loop.add_reader(self._out, self._read)
        loop.add_reader(self._pidfd, self._reap)

    def kill(self) -> None:
        """SIGKILL the whole session; the exit is then noticed (and reaped) as any other."""
        if self.returncode is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Kill, wait and release everything now (for when the event loop no longer runs)."""
        self.kill()
        if self.returncode is None:
            self.returncode = self.popen.wait()
        self._release()

    def peak_memory_mb(self) -> int:
        """The process's peak resident memory so far (VmHWM), in MiB; 0 when unknown."""
        try:
            with open(f"/proc/{self.pid}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"VmHWM:"):
                        return int(line.split()[1]) // 1024
        except (OSError, ValueError, IndexError):
            pass
        return 0

    # -- output ------------------------------------------------------------------
    def _read(self) -> None:
        try:
            data = os.read(self._out, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._emit(data)
        else:
            self._stop_reading()

    def _emit(self, data: bytes) -> None:
        lines = _LINE_BREAKS.split(self._partial + data)
        self._partial = lines.pop()
        if len(self._partial) > _MAX_LINE:
            lines.append(self._partial)
            self._partial = b""
        if lines:
            self._write(lines)

    def _write(self, lines: list[bytes]) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        text = "".join(
            f"{stamp} {self._prefix}{line.decode('utf-8', 'replace')}\n" for line in lines
        )
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def _stop_reading(self) -> None:
        if self._out < 0:
            return
        if self._partial:
            self._write([self._partial])
            self._partial = b""
        try:
            self.loop.remove_reader(self._out)
        except RuntimeError:  # the loop is closed
            pass
        self.popen.stdout.close()
        self._out = -1

    # -- exit ----------------------------------------------------------------------
    def _reap(self) -> None:
        self.returncode = self.popen.wait()  # it has exited: this does not block
        try:
            os.killpg(self.pid, signal.SIGKILL)  # anything it left behind in its session
        except ProcessLookupError:
            pass
        while self._out >= 0:  # what it wrote last (an error, a traceback) comes first
            try:
                data = os.read(self._out, 65536)
            except OSError:
                break
            if not data:
                break
            self._emit(data)
        self._release()
        self._on_exit()

    def _release(self) -> None:
        self._stop_reading()
        if self._pidfd >= 0:
            try:
                self.loop.remove_reader(self._pidfd)
            except RuntimeError:
                pass
            os.close(self._pidfd)
            self._pidfd = -1


class _Runtime:
    """A process and its Runtime API endpoint, with what the pool knows about them."""

    __slots__ = ("api", "process", "started", "ready_at", "served", "stopping", "init_error")

    def __init__(self, api: RuntimeApi) -> None:
        self.api = api
        self.process: RuntimeProcess | None = None
        self.started = time.monotonic()
        self.ready_at: float | None = None  # monotonic time its init finished
        self.served = 0
        self.stopping = ""  # why the pool killed it, if it did
        self.init_error: Outcome | None = None


class RuntimePool:
    """Up to `concurrency` runtime processes of one function version; see the module docstring."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        argv: list[str],
        cwd: str,
        environment: Callable[[str], dict[str, str]],
        label: str,
        arn: str,
        concurrency: int,
        timeout: float,
        memory_mb: int,
    ) -> None:
        """`environment(runtime_api_address)` gives each new process its environment."""
        self.loop = loop
        self.argv = argv
        self.cwd = cwd
        self.environment = environment
        self.label = label
        self.arn = arn
        self.concurrency = concurrency
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.runtimes: list[_Runtime] = []
        self.queue: deque[Invocation] = deque()
        self.closed = False
        self._by_api: dict[RuntimeApi, _Runtime] = {}
        self._init_waiter: asyncio.Future | None = None
        self._recheck: asyncio.TimerHandle | None = None

    # -- life cycle ----------------------------------------------------------------
    async def start(self) -> None:
        """Start one runtime and wait for its init; HandlerLoadError (and closed) if it fails."""
        self._init_waiter = self.loop.create_future()
        self._spawn()
        try:
            await asyncio.wait_for(self._init_waiter, INIT_TIMEOUT_S)
        except TimeoutError:
            self.close()
            raise HandlerLoadError(
                f"{self.label}: init did not finish within {INIT_TIMEOUT_S:g} s"
            ) from None
        except BaseException:  # HandlerLoadError, or cancelled by a caller that gave up
            self.close()
            raise
        finally:
            self._init_waiter = None

    def close(self) -> None:
        """Fail what waits, kill every runtime; reaped now, or by the loop when it runs."""
        if self.closed:
            return
        self.closed = True
        if self._recheck is not None:
            self._recheck.cancel()
        while self.queue:
            self.queue.popleft().settle(_STOPPED)
        self._init_failed("the function was stopped during its init")
        running = self.loop.is_running()
        for runtime in list(self.runtimes):
            invocation = runtime.api.abandon()
            if invocation is not None:
                invocation.finish(_STOPPED)
            runtime.api.close()
            runtime.stopping = runtime.stopping or "function closed"
            if running:
                runtime.process.kill()  # its pidfd reader reaps it
            else:
                runtime.process.close()
        if not running:
            self.runtimes.clear()
            self._by_api.clear()

    # -- invocations ---------------------------------------------------------------
    async def invoke(
        self,
        request_id: str,
        payload: bytes,
        *,
        limit: float,
        client_context: str | None = None,
        cognito_identity: str | None = None,
    ) -> Outcome:
        """Run one event; `limit` is API Gateway's own wait, from now."""
        if self.closed:
            return _STOPPED
        invocation = Invocation(
            request_id,
            payload,
            timeout=self.timeout,
            arn=self.arn,
            future=self.loop.create_future(),
            client_context=client_context,
            cognito_identity=cognito_identity,
        )
        invocation.gateway = self.loop.call_later(limit, self._gateway_timeout, invocation, limit)
        self.queue.append(invocation)
        self._dispatch()
        return await invocation.future

    def _dispatch(self, count_running: bool = True) -> None:
        """Hand waiting events to idle runtimes; start runtimes for the rest, up to the limit.

        Runtimes that have answered and not yet asked again (`RUNNING`) count as
        coming, unless they are still not back after `_RUNNING_GRACE_S`: then
        the events waiting for them get runtimes of their own.
        """
        queue = self.queue
        if not queue or self.closed:
            return
        for runtime in self.runtimes:
            if runtime.api.state == IDLE:
                self._deliver(runtime, queue.popleft())
                if not queue:
                    return
        room = self.concurrency - len(self.runtimes)
        if room > 0:
            needed = len(queue) - sum(1 for r in self.runtimes if r.api.state == STARTING)
            running = sum(1 for r in self.runtimes if r.api.state == RUNNING)
            spawn = min(needed - running if count_running else needed, room)
            for _ in range(spawn):
                self._spawn()
            if count_running and running and needed > spawn and self._recheck is None:
                self._recheck = self.loop.call_later(_RUNNING_GRACE_S, self._dispatch_late)

    def _dispatch_late(self) -> None:
        self._recheck = None
        self._dispatch(count_running=False)

    def _deliver(self, runtime: _Runtime, invocation: Invocation) -> None:
        runtime.served += 1
        runtime.api.deliver(invocation)
        invocation.deadline = self.loop.call_later(
            invocation.timeout, self._expired, runtime, invocation
        )

    def _expired(self, runtime: _Runtime, invocation: Invocation) -> None:
        invocation.deadline = None
        if runtime.api.invocation is invocation:
            runtime.api.abandon()
        invocation.finish(
            Outcome(
                Outcome.TIMEOUT, message=f"Task timed out after {invocation.timeout:.2f} seconds"
            )
        )
        self._stop(runtime, "timed out")

    def _gateway_timeout(self, invocation: Invocation, limit: float) -> None:
        invocation.gateway = None
        try:
            self.queue.remove(invocation)
        except ValueError:
            pass  # a runtime has it: its own deadline still stops it
        invocation.settle(
            Outcome(
                Outcome.GATEWAY_TIMEOUT, message=f"Endpoint request timed out after {limit:g} s"
            )
        )

    # -- RuntimeApi events (ApiOwner) ----------------------------------------------
    def api_idle(self, api: RuntimeApi, first: bool) -> None:
        runtime = self._by_api[api]
        if first:
            runtime.ready_at = time.monotonic()
            init_ms = (runtime.ready_at - runtime.started) * 1000
            diag(f"{self.label}: runtime {runtime.process.pid} ready (init {init_ms:.0f} ms)")
            if self._init_waiter is not None and not self._init_waiter.done():
                self._init_waiter.set_result(None)
        self._dispatch()

    def api_result(self, api: RuntimeApi, invocation: Invocation, outcome: Outcome) -> None:
        runtime = self._by_api[api]
        peak = runtime.process.peak_memory_mb()
        if peak > self.memory_mb:
            outcome = Outcome(
                Outcome.EXIT,
                error_type="Runtime.OutOfMemory",
                message=f"Runtime exited: memory size {self.memory_mb} MB exceeded "
                f"(Max Memory Used: {peak} MB)",
            )
            self._stop(runtime, "out of memory")
        invocation.finish(outcome)

    def api_init_error(self, api: RuntimeApi, outcome: Outcome) -> None:
        runtime = self._by_api[api]
        runtime.init_error = outcome
        diag(f"{self.label}: runtime {runtime.process.pid} init failed: {outcome.describe()}")
        invocation = api.abandon()
        if invocation is not None:
            invocation.finish(outcome)
        self._init_failed(f"init failed: {outcome.describe()}")
        self._stop(runtime, "init error")

    # -- processes -----------------------------------------------------------------
    def _spawn(self) -> None:
        api = RuntimeApi(self.loop, self)
        runtime = _Runtime(api)
        try:
            runtime.process = RuntimeProcess(
                self.loop,
                self.argv,
                self.environment(api.address),
                self.cwd,
                self.label,
                lambda: self._exited(runtime),
            )
        except OSError as exc:
            api.close()
            message = f"cannot start {self.argv[0]}: {exc}"
            diag(f"{self.label}: {message}")
            self._init_failed(message)
            self._fail_queue(
                Outcome(Outcome.EXIT, error_type="Runtime.InvalidEntrypoint", message=message)
            )
            return
        self.runtimes.append(runtime)
        self._by_api[api] = runtime

    def _stop(self, runtime: _Runtime, reason: str) -> None:
        runtime.stopping = runtime.stopping or reason
        runtime.process.kill()

    def _exited(self, runtime: _Runtime) -> None:
        if runtime in self.runtimes:
            self.runtimes.remove(runtime)
            del self._by_api[runtime.api]
        pid = runtime.process.pid
        status = _exit_status(runtime.process.returncode)
        invocation = runtime.api.abandon()
        runtime.api.close()
        if invocation is not None:
            invocation.finish(
                Outcome(
                    Outcome.EXIT,
                    error_type="Runtime.ExitError",
                    message=f"Runtime exited with error: {status}",
                )
            )
        if runtime.stopping:
            diag(f"{self.label}: runtime {pid} stopped ({runtime.stopping})")
        else:
            diag(f"{self.label}: runtime {pid} exited with error: {status}")
        if self.closed:
            return
        if runtime.ready_at is None:
            message = f"runtime exited during init with error: {status}"
            self._init_failed(message)
            if not self.runtimes:
                self._fail_queue(
                    runtime.init_error
                    or Outcome(Outcome.EXIT, error_type="Runtime.ExitError", message=message)
                )
        elif runtime.served or time.monotonic() - runtime.ready_at >= _STABLE_S:
            self._spawn()  # keep one warm runtime in its place
        self._dispatch()

    def _init_failed(self, message: str) -> None:
        waiter = self._init_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(HandlerLoadError(f"{self.label}: {message}"))

    def _fail_queue(self, outcome: Outcome) -> None:
        while self.queue:
            self.queue.popleft().settle(outcome)


def _exit_status(returncode: int | None) -> str:
    """As Lambda words it: `exit status 1`, `signal: killed`."""
    if returncode is None:
        return "unknown"
    if returncode < 0:
        name = signal.strsignal(-returncode) or f"signal {-returncode}"
        return f"signal: {name.lower()}"
    return f"exit status {returncode}"
