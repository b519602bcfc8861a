"""One WASI command run in a fresh wasmtime store, under limits the engine enforces.

A `Sandbox` holds what is shared by every request to one module version: the
compiled module and its `InstancePre` (imports resolved once, so a request
pays only for instantiation). Compiled code is also cached on disk by
wasmtime (`~/.cache/wasmtime`, keyed by the module's hash and the engine's
settings): a restart, or the second worker loading the same file, takes
1-17 ms instead of compiling again (54, 136 and 334 ms for the Zig, C and
Rust examples). `run()` creates a new `Store` per call, so no
state survives from one request to the next.

Limits, all enforced inside the engine rather than by the thread that waits:

- time: epoch interruption. A ticker thread advances the engine's epoch every
  `TICK` seconds while a call is running (and sleeps otherwise); each store's
  deadline is one tick away and a per-store callback decides, on each tick,
  whether the call may go on. Past its deadline the instance traps, even
  inside `loop { }`. A host call does not check epochs, and WASI's
  `poll_oneoff` (`sleep()`) would block the thread for as long as the guest
  asks, so that one import is replaced by `_poll_oneoff`, which sleeps at most
  until the deadline; back in wasm, the next tick traps.
- memory: the store's limiter caps linear memory (`memory.grow` fails past
  it; the toolchains' allocators then abort or exit non-zero).
- output: stdout and stderr go to per-thread memfds whose sizes the tick
  callback checks, so a module writing in a loop is stopped at `MAX_OUTPUT`
  (plus at most one tick's worth of writes).

Instances come from wasmtime's pooling allocator (`SLOTS` slots, each
reserving a 4 GiB linear memory's address space: 512 GiB of virtual, not
resident, memory per worker). Measured against on-demand allocation, CPU
time per request, best of 8 rounds of 400 (hello modules, 2-core machine):
C 250 -> 225 us, Zig 300 -> 269 us, Rust 318 -> 267 us. Past `SLOTS`
concurrent runs a request gets 503. Other engine settings measured and
left at their defaults: `memory_init_cow=False` (C 250, Zig 265, Rust 305:
no clear gain).

I/O goes through memfds (`/proc/self/fd/N`) and `stdin_bytes`, never through
`stdout_custom`: that callback is called from wasmtime's tokio threads, which
must take the GIL for every write (measured: 650 us per request against
380 us with a memfd, 18 KB Zig module), and a tokio thread calling into a
finalizing interpreter is killed by CPython (`pthread_exit`), whose forced
unwind through Rust frames that cannot unwind is the `tokio-rt-worker`
"panic in a function that cannot unwind" seen at interpreter exit (1 run in
5 of 3,000 requests; without Python callbacks on those threads, none in 5
such runs nor in 12 of 300). The remaining Python callbacks (tick, `poll_oneoff`) run on the
calling thread, and `shutdown()` (also at exit) stops every running instance
before the interpreter finalizes.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import struct
import threading
import time
from dataclasses import dataclass

import wasmtime
from wasmtime import _ffi as ffi

from flexilib.log import diag

__all__ = ["MAX_OUTPUT", "Outcome", "Sandbox", "shutdown"]

TICK = 0.01  # seconds between epoch ticks while a call runs: the timeout's granularity
IDLE_TICKS = 100  # ticks without a running call before the ticker parks (1 s)
MAX_OUTPUT = 64 * 1024 * 1024  # bytes of stdout a module may write (checked every tick)
MAX_STDERR = 16 * 1024  # bytes of stderr copied into the server log per request
KEEP_OUTPUT = 1024 * 1024  # a memfd holding more than this after a run is emptied at once
TABLE_ELEMENTS = 1_000_000  # 8 MB of table: far beyond what compilers emit, bounded
SLOTS = 128  # instances that can run at once per worker (the pooling allocator's size)

_EINVAL = 28
_SUBSCRIPTION = 48  # bytes per WASI subscription, and per event below
_EVENT = struct.Struct("<QHB5xQH6x")
_CLOCK = struct.Struct("<I4xQQH")
_CHARS = ctypes.POINTER(ctypes.POINTER(ctypes.c_char))


@dataclass
class Outcome:
    """What one run produced: stdout, the head of stderr, and why it failed (None: it did not)."""

    stdout: bytes
    stderr: bytes
    status: int = 200  # the HTTP status a failure maps to
    error: str | None = None


class _Run:
    """The running call's limits, seen by the tick callback and `_poll_oneoff` on its thread."""

    __slots__ = ("deadline", "timeout", "streams", "verdict")

    def __init__(self, timeout: float, streams: _Streams) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.streams = streams
        self.verdict: tuple[int, str] | None = None  # set when the engine was told to stop

    def check(self) -> tuple[int, str] | None:
        if _stopping.is_set():
            self.verdict = (503, "stopped: the server is shutting down")
        elif time.monotonic() >= self.deadline:
            self.verdict = (504, f"timed out after {self.timeout:g}s")
        elif self.streams.written() > MAX_OUTPUT:
            self.verdict = (502, f"wrote more than {MAX_OUTPUT >> 20} MB to stdout and stderr")
        return self.verdict


class _Streams:
    """A pool thread's stdout and stderr memfds, reused by every call on that thread."""

    def __init__(self) -> None:
        self.out = os.memfd_create("wasm-stdout", os.MFD_CLOEXEC)
        self.err = os.memfd_create("wasm-stderr", os.MFD_CLOEXEC)
        self.out_path = ctypes.c_char_p(b"/proc/self/fd/%d" % self.out)
        self.err_path = ctypes.c_char_p(b"/proc/self/fd/%d" % self.err)

    def read(self) -> tuple[bytes, bytes]:
        """The run's output. wasmtime truncates both files when the next run opens them;
        a large output is dropped now rather than held by an idle thread until then."""
        size = os.fstat(self.out).st_size
        out = os.pread(self.out, size, 0)
        err = os.pread(self.err, MAX_STDERR, 0)
        if size + os.fstat(self.err).st_size > KEEP_OUTPUT:
            os.ftruncate(self.out, 0)
            os.ftruncate(self.err, 0)
        return out, err

    def written(self) -> int:
        return os.fstat(self.out).st_size + os.fstat(self.err).st_size

    def __del__(self) -> None:  # the thread exited (its threading.local is cleared)
        os.close(self.out)
        os.close(self.err)


_local = threading.local()
_stopping = threading.Event()
_lock = threading.Lock()
_active = 0  # calls running now
_parked = False  # the ticker waits for a call to start
_wake = threading.Condition(_lock)
_engine: wasmtime.Engine | None = None


def engine() -> wasmtime.Engine:
    """The process's engine (created on first use, in the worker: never before a fork)."""
    global _engine
    with _lock:
        if _engine is None:
            config = wasmtime.Config()
            config.epoch_interruption = True
            try:
                config.cache = True  # wasmtime's on-disk cache of compiled code
            except wasmtime.WasmtimeError as exc:
                diag(f"wasm: compiled-code cache unavailable, compiling every load: {exc}")
            pool = ffi.wasmtime_pooling_allocation_config_new()
            for setting in ("core_instances", "memories", "tables", "stacks"):
                getattr(ffi, f"wasmtime_pooling_allocation_config_total_{setting}_set")(pool, SLOTS)
            ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
            ffi.wasmtime_pooling_allocation_config_delete(pool)
            _engine = wasmtime.Engine(config)
            threading.Thread(target=_ticker, name="wasm-epoch", daemon=True).start()
            atexit.register(shutdown)
        return _engine


def _ticker() -> None:
    """Advance the epoch every TICK; park after IDLE_TICKS ticks without a call running.

    Parking whenever no call runs would wake the thread (a futex wake and a
    GIL hand-off) for almost every request of a sequential client; ticking
    through a busy period costs one short GIL hold per TICK instead.
    """
    global _parked
    idle = 0
    while True:
        time.sleep(TICK)
        _engine.increment_epoch()
        with _wake:
            if _active:
                idle = 0
                continue
            idle += 1
            if idle < IDLE_TICKS:
                continue
            _parked = True
            while not _active:
                _wake.wait()
            _parked = False
            idle = 0


def _enter() -> None:
    global _active
    with _wake:
        _active += 1
        if _parked:
            _wake.notify_all()


def _leave() -> None:
    global _active
    with _wake:
        _active -= 1
        if _stopping.is_set():
            _wake.notify_all()  # shutdown() waits for the count to reach 0


def shutdown(wait: float = 2.0) -> None:
    """Stop every running instance (it traps at the next tick) and wait for them to leave."""
    _stopping.set()
    deadline = time.monotonic() + wait
    with _wake:
        while _active and time.monotonic() < deadline:
            _wake.wait(deadline - time.monotonic())


@ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ctypes.c_uint8),
)
def _on_tick(_context, _env, delta, kind) -> int:
    """The store reached its epoch deadline: trap (return an error) or allow one more tick."""
    verdict = _local.run.check()
    if verdict is not None:
        error = ffi.wasmtime_error_new(verdict[1].encode())
        return ctypes.cast(error, ctypes.c_void_p).value
    delta[0] = 1
    kind[0] = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE
    return 0


_on_tick_ptr = ctypes.cast(_on_tick, ctypes.c_void_p).value
_set_tick_callback = ffi.dll.wasmtime_store_epoch_deadline_callback
_set_tick_callback.argtypes = [ctypes.c_void_p] * 4
_set_tick_callback.restype = None


def _poll_oneoff(caller: wasmtime.Caller, subs: int, events: int, count: int, nout: int) -> int:
    """WASI `poll_oneoff`, with waits cut at the call's deadline.

    Every descriptor a module can hold here is ready at once (stdin is in
    memory, stdout and stderr are files, preopens are read-only files), so
    fd subscriptions complete immediately; otherwise the nearest clock is
    slept on, at most until the deadline, past which the instance traps.
    """
    memory = caller["memory"]
    if count == 0 or not isinstance(memory, wasmtime.Memory):
        return _EINVAL
    data = memory.read(caller, subs, subs + count * _SUBSCRIPTION)
    ready: list[bytes] = []
    clocks: list[tuple[float, int]] = []
    for offset in range(0, count * _SUBSCRIPTION, _SUBSCRIPTION):
        userdata, tag = struct.unpack_from("<QB", data, offset)
        if tag in (1, 2):  # fd_read, fd_write
            ready.append(_EVENT.pack(userdata, 0, tag, 0, 0))
        elif tag == 0:
            clock, timeout, _precision, flags = _CLOCK.unpack_from(data, offset + 16)
            if flags & 1:  # an absolute time on that clock
                now = time.clock_gettime_ns(
                    time.CLOCK_REALTIME if clock == 0 else time.CLOCK_MONOTONIC
                )
                timeout = max(0, timeout - now)
            clocks.append((timeout / 1e9, userdata))
        else:
            return _EINVAL
    if not ready:
        delay = min(seconds for seconds, _ in clocks)
        remaining = _local.run.deadline - time.monotonic()
        if delay > 0 and remaining > 0:  # woken early by the deadline: the next tick traps
            _stopping.wait(min(delay, remaining))
        ready = [
            _EVENT.pack(userdata, 0, 0, 0, 0) for seconds, userdata in clocks if seconds <= delay
        ]
    memory.write(caller, b"".join(ready), events)
    memory.write(caller, struct.pack("<I", len(ready)), nout)
    return 0


def _streams() -> _Streams:
    streams = getattr(_local, "streams", None)
    if streams is None:
        streams = _local.streams = _Streams()
    return streams


class Sandbox:
    """A compiled WASI command and the limits every run of it gets."""

    def __init__(
        self,
        path: str,
        *,
        timeout: float,
        memory_mb: int,
        env: dict[str, str],
        dirs: list[tuple[str, str]],
    ) -> None:
        """Compile `path` (.wasm or .wat); WasmtimeError or OSError when it cannot be."""
        self.timeout = timeout
        self.memory = memory_mb << 20
        self._env_names = [name.encode() for name in env]
        self._env_values = [value.encode() for value in env.values()]
        self._dirs = [(host.encode(), guest.encode()) for host, guest in dirs]
        self._argv_name = os.path.basename(path).encode()  # kept alive: argv points at it
        self._argv = ctypes.cast((ctypes.c_char_p * 1)(self._argv_name), _CHARS)
        eng = self._engine = engine()
        module = wasmtime.Module.from_file(eng, path)
        linker = wasmtime.Linker(eng)
        linker.define_wasi()
        linker.allow_shadowing = True
        i32 = wasmtime.ValType.i32()
        linker.define_func(
            "wasi_snapshot_preview1",
            "poll_oneoff",
            wasmtime.FuncType([i32] * 4, [i32]),
            _poll_oneoff,
            access_caller=True,
        )
        start = next((e.type for e in module.exports if e.name == "_start"), None)
        if not isinstance(start, wasmtime.FuncType) or start.params or start.results:
            raise wasmtime.WasmtimeError("not a WASI command: no `_start` function export")
        self._pre = linker.instantiate_pre(module)

    def run(self, env: list[tuple[str, str]], stdin: bytes) -> Outcome:
        """Run the command once in a new store; failures come back in the Outcome."""
        streams = _streams()
        run = _local.run = _Run(self.timeout, streams)
        store = wasmtime.Store(self._engine)
        context = store._context()
        try:
            store.set_limits(memory_size=self.memory, table_elements=TABLE_ELEMENTS)
            _set_tick_callback(ctypes.cast(store.ptr(), ctypes.c_void_p), _on_tick_ptr, None, None)
            ffi.wasmtime_context_set_epoch_deadline(context, 1)
            error = ffi.wasmtime_context_set_wasi(context, self._wasi(streams, env, stdin))
            if error:
                raise wasmtime.WasmtimeError._from_ptr(error)
            _enter()
            try:
                status, message = self._call(context)
            finally:
                _leave()
            if run.verdict is not None:
                status, message = run.verdict
            out, err = streams.read()
            return Outcome(out, err, status, message)
        finally:
            store.close()
            _local.run = None

    def _wasi(self, streams: _Streams, env: list[tuple[str, str]], stdin: bytes):
        """A WASI context for one run, made through the C API directly.

        The wrapper's `WasiConfig.env` builds its C arrays one element at a
        time: 43 us against 27 us here for WAGI's 22 variables (CPU, best of 15
        rounds of 2,000).
        """
        config = ffi.wasi_config_new()
        ffi.wasi_config_set_argv(config, 1, self._argv)
        names = [*self._env_names, *[name.encode() for name, _ in env]]
        values = [*self._env_values, *[value.encode() for _, value in env]]
        count = len(names)
        ffi.wasi_config_set_env(
            config,
            count,
            ctypes.cast((ctypes.c_char_p * count)(*names), _CHARS),
            ctypes.cast((ctypes.c_char_p * count)(*values), _CHARS),
        )
        vec = ffi.wasm_byte_vec_t()
        buffer = (ffi.wasm_byte_t * len(stdin)).from_buffer_copy(stdin) if stdin else None
        ffi.wasm_byte_vec_new(ctypes.byref(vec), len(stdin), buffer)
        ffi.wasi_config_set_stdin_bytes(config, ctypes.byref(vec))  # takes the vector
        ffi.wasi_config_set_stdout_file(config, streams.out_path)
        ffi.wasi_config_set_stderr_file(config, streams.err_path)
        for host, guest in self._dirs:
            if not ffi.wasi_config_preopen_dir(config, host, guest, False):  # read-only
                raise wasmtime.WasmtimeError(f"cannot open {host.decode()}")
        return config

    def _call(self, context) -> tuple[int, str | None]:
        """Instantiate and call `_start`; (HTTP status, failure or None)."""
        instance = ffi.wasmtime_instance_t()
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi.wasmtime_instance_pre_instantiate(
            self._pre.ptr(), context, ctypes.byref(instance), ctypes.byref(trap)
        )
        if not error and not trap:
            start = ffi.wasmtime_extern_t()
            ffi.wasmtime_instance_export_get(
                context, ctypes.byref(instance), b"_start", 6, ctypes.byref(start)
            )
            error = ffi.wasmtime_func_call(
                context, ctypes.byref(start.of.func), None, 0, None, 0, ctypes.byref(trap)
            )
        if trap:
            return 500, f"trapped: {_first_line(wasmtime.Trap._from_ptr(trap))}"
        if error:
            failure = wasmtime.WasmtimeError._from_ptr(error)
            if isinstance(failure, wasmtime.ExitTrap):
                return (
                    (200, None)
                    if failure.code == 0
                    else (500, f"exited with status {failure.code}")
                )
            message = _first_line(failure)
            if "concurrent limit" in message:  # every pooling slot is running an instance
                return 503, f"busy: all {SLOTS} instance slots of this worker are in use"
            return 500, f"failed: {message}"
        return 200, None


def _first_line(exc: Exception) -> str:
    """A trap's message without its backtrace, for a one-line log."""
    text = str(exc)
    head = text.split("\n", 1)[0].strip()
    cause = text.rpartition("Caused by:")[2].strip().split("\n", 1)[0].strip()
    return f"{head} ({cause})" if cause and cause != head else head
