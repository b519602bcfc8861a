"""The master process: owns the listening socket and the config, runs the workers, replaces the dead.

It never loads handler code, so a native library that crashes takes down
one worker, never the master. Like gunicorn's arbiter, it is a small loop
over a selector: signals arrive as bytes on a wakeup pipe
(`signal.set_wakeup_fd`), and each worker has a control pipe the master
writes messages to (`server/control.py`). It runs no event loop and no
handler code; what it holds beyond that is shared with its workers.

- Memory: before the first fork the master imports the worker's modules
  (`flexilib.server.worker`, uvloop, never a handler's code or library) and
  `gc.freeze()`s its heap, so every worker shares those pages instead of
  importing its own copy and the collector never writes to them
  (`_share_with_workers`).
- The config: the master validates it once, in a short-lived forked child
  (validation imports the handler kinds, which would more than double the
  master's memory), and gives the validated rules to every worker: forked
  with them at start and on a restart, sent them on SIGHUP. Workers never
  read `proxy.ini` themselves, so they can never disagree about it.
- SIGHUP: validate the config again; if it is good, send it to the workers;
  if not, log why and keep the old one everywhere.
- SIGTERM/SIGINT: `/readyz` answers 503 at once; after `--drain-delay`
  seconds of serving on (so endpoint removal reaches every load balancer),
  close the listener, forward SIGTERM, wait for the workers; a second one
  kills them at once.
- `--watch-config`: the config is looked at twice a second (its resolved
  path and its inode's size and times, so a Kubernetes ConfigMap's symlink
  swap is seen), and a change that holds still for one look is reloaded as
  on SIGHUP.
- A worker that dies unasked is replaced at once; one that keeps dying soon
  after start is restarted with a growing delay (up to `MAX_BACKOFF`).
- A worker whose event loop has not ticked for `--worker-timeout` seconds
  (the scoreboard, `server/scoreboard.py`) is stuck: it is killed and
  replaced, with a log line.
- A worker that dies inside a native library (a signal, or killed as stuck;
  the scoreboard's crash cells say which library each thread was calling)
  is replaced at once, and the library is quarantined: every worker answers
  its routes 503 with `Retry-After` for `QUARANTINE_FIRST` seconds, doubling
  while it keeps crashing (up to `QUARANTINE_MAX`). So a library that crashes
  on every request costs one worker's connections once per quarantine, not
  the whole server's traffic to a growing restart back-off.
- Observability (`--admin`): each worker also has a report pipe the master
  reads in the same loop: once a tick, what the worker served (deltas), and
  `("serving", generation)` once it serves a config. The master adds them
  up (`admin/aggregate.py`), so totals outlive workers, and serves them on
  the admin port from the same loop (`admin/listener.py`).
"""

from __future__ import annotations

import gc
import os
import pickle
import selectors
import signal
import socket
import time
from functools import partial

from flexilib.admin.aggregate import Totals
from flexilib.config import HandlerSpec, Rule
from flexilib.log import diag
from flexilib.server.control import Decoder, encode
from flexilib.server.scoreboard import Scoreboard
from flexilib.settings import Settings

__all__ = ["block_signals", "listen", "read_and_validate", "run_master"]

MAX_BACKOFF = 10.0
STABLE_AFTER = 5.0  # a worker alive this long resets the crash count
QUARANTINE_FIRST = 5.0  # seconds a library that crashed a worker is not called
QUARANTINE_MAX = 300.0
QUARANTINE_FORGET = 60.0  # quiet this long after its quarantine: the next one starts again
CONFIG_POLL = 0.5  # seconds between looks at the config with --watch-config
_SIGNALS = (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


def listen(settings: Settings) -> socket.socket:
    """The listening socket, shared by every worker."""
    family = socket.AF_INET6 if ":" in settings.address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((settings.address, settings.port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def block_signals() -> None:
    """Hold the master's signals from the start (a stop during start-up is a stop, not a kill)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


class WorkerProcess:
    """The master's record of one worker process."""

    __slots__ = ("number", "pid", "started", "control", "outbox", "killed", "reports", "decoder")

    def __init__(self, number: int, pid: int, control: int, reports: int | None) -> None:
        self.number = number  # 0 .. workers-1: its scoreboard record and restart schedule
        self.pid = pid
        self.started = time.monotonic()
        self.control = control  # the write end of its control pipe
        self.outbox = b""  # control bytes the pipe could not take yet
        self.killed = False  # killed for not ticking: its death is expected
        self.reports = reports  # the read end of its report pipe (None: --admin off)
        self.decoder = Decoder()


class Quarantine:
    """A native library that crashed a worker: not called until `until` (monotonic)."""

    __slots__ = ("until", "strikes")

    def __init__(self) -> None:
        self.until = 0.0
        self.strikes = 0


class Master:
    def __init__(
        self,
        settings: Settings,
        sock: socket.socket,
        rules: list[Rule],
        totals: Totals | None = None,
        admin: socket.socket | None = None,
    ) -> None:
        self.settings = settings
        self.sock = sock
        self.rules = rules  # the last config that validated: what every worker serves
        self.totals = totals  # what the workers report, for the admin listener (None: off)
        self.generation = 0  # counts the configs that validated: workers confirm serving one
        self.workers: dict[int, WorkerProcess] = {}  # by pid
        self.crashes = [0] * settings.workers
        self.restart_at: dict[int, float] = {}  # worker number -> when to start it
        self.stopping = False
        self.scoreboard = Scoreboard(settings.workers)
        self.drain_until = 0.0  # after a stop signal, with --drain-delay: when to stop
        self.drain_signal = signal.SIGTERM
        self._config_stamp = _config_stamp(settings.config)  # for --watch-config
        self._config_pending: tuple | None = None
        self._config_check_at = 0.0
        self.quarantined: dict[HandlerSpec, Quarantine] = {}
        self.selector = selectors.DefaultSelector()
        self._wakeup_r, self._wakeup_w = os.pipe()
        self.admin = None
        if admin is not None:
            from flexilib.admin.app import AdminApp
            from flexilib.admin.listener import AdminListener

            self.admin = AdminListener(admin, AdminApp(totals).answer, self.selector)

    # -- workers ------------------------------------------------------------------
    def spawn(self, number: int) -> None:
        reader, writer = os.pipe()
        report_r, report_w = os.pipe() if self.totals is not None else (None, None)
        self.scoreboard.beat(number)  # its silence counts from now
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                os.close(writer)
                self._forget_in_child()
                _keep_only({self.sock.fileno(), reader, report_w})
                from flexilib.server.worker import run_worker

                blocked = {spec: q.until for spec, q in self.quarantined.items()}
                status = run_worker(
                    self.sock,
                    self.settings,
                    self.rules,
                    number,
                    self.scoreboard,
                    reader,
                    report_w,
                    blocked,
                )
            except BaseException as exc:  # noqa: BLE001 - report, never return into the master
                diag(f"worker failed: {exc!r}")
            finally:
                os._exit(status)
        os.close(reader)
        os.set_blocking(writer, False)
        worker = self.workers[pid] = WorkerProcess(number, pid, writer, report_r)
        if report_r is not None:
            os.close(report_w)
            os.set_blocking(report_r, False)
            self.selector.register(report_r, selectors.EVENT_READ, partial(self._read, worker))
            self.totals.worker_started(number, pid)
            self.send(worker, ("generation", self.generation))  # answered once it serves
        diag(f"worker {number} started (pid {pid})")

    def _forget_in_child(self) -> None:
        """In a new worker: drop the master's signal plumbing and its siblings' pipes."""
        signal.set_wakeup_fd(-1)
        # SIGTERM stays blocked until the worker's loop handles it (a default one would kill
        # it half-started); SIGHUP and SIGINT are ignored: the master reloads and sends the
        # rules, and forwards a Ctrl-C (which reaches the whole process group) as SIGTERM.
        signal.pthread_sigmask(signal.SIG_SETMASK, {signal.SIGTERM})
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        for fd in (self._wakeup_r, self._wakeup_w, self.selector.fileno()):
            os.close(fd)
        for sibling in self.workers.values():
            os.close(sibling.control)

    def reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue  # a config validation child
            self._drop_control(worker)
            if self.totals is not None:
                self._read(worker)  # what it wrote before it died may still be in the pipe
                self.totals.worker_gone(pid)
            inside = self._libraries(worker.number) if os.WIFSIGNALED(status) else []
            if self.stopping:
                diag(f"worker {worker.number} (pid {pid}) {_describe(status)}")
                continue
            number = worker.number
            lived = time.monotonic() - worker.started
            if lived > STABLE_AFTER:
                self.crashes[number] = 0
            for spec in inside:
                self._quarantine(spec, worker, status)
            if inside:  # the cause is known and kept away: no reason to wait
                delay = 0.0
            else:
                delay = (
                    0.0
                    if not self.crashes[number]
                    else min(0.1 * 2 ** self.crashes[number], MAX_BACKOFF)
                )
                self.crashes[number] += 1
            diag(
                f"worker {number} (pid {pid}) {_describe(status)} after {lived:.1f}s;"
                f" restarting {'now' if not delay else f'in {delay:.1f}s'}"
            )
            self.restart_at[number] = time.monotonic() + delay

    def _libraries(self, number: int) -> list[HandlerSpec]:
        """The native libraries worker `number` was inside when it died (crash cells)."""
        marks = self.scoreboard.marked(number)
        specs = {rule.spec.marker: rule.spec for rule in self.rules if rule.spec.kind == "native"}
        return [specs[mark] for mark in marks if mark in specs]

    def _quarantine(self, spec: HandlerSpec, worker: WorkerProcess, status: int) -> None:
        now = time.monotonic()
        quarantine = self.quarantined.setdefault(spec, Quarantine())
        if now > quarantine.until + QUARANTINE_FORGET:
            quarantine.strikes = 0
        quarantine.strikes += 1
        seconds = min(QUARANTINE_FIRST * 2 ** (quarantine.strikes - 1), QUARANTINE_MAX)
        quarantine.until = now + seconds
        routes = ", ".join(rule.key for rule in self.rules if rule.spec == spec)
        diag(
            f"worker {worker.number} (pid {worker.pid}) {_describe(status)} inside"
            f" {spec.target}: quarantined for {seconds:g}s (crash {quarantine.strikes} in a"
            f" row); its routes ({routes}) answer 503 until then"
        )
        for other in self.workers.values():
            self.send(other, ("quarantine", (spec, quarantine.until)))

    def check_liveness(self) -> None:
        """Kill a worker whose loop has stopped ticking (see the module docstring)."""
        limit = self.settings.worker_timeout
        if not limit:
            return
        for worker in self.workers.values():
            silent = self.scoreboard.silent_for(worker.number)
            if silent > limit and not worker.killed:
                diag(
                    f"worker {worker.number} (pid {worker.pid}) unresponsive: its event loop"
                    f" has not run for {silent:.0f}s (--worker-timeout {limit:g}); killing it"
                )
                worker.killed = True
                os.kill(worker.pid, signal.SIGKILL)

    # -- the control pipes ----------------------------------------------------------
    def send(self, worker: WorkerProcess, message: object) -> None:
        worker.outbox += encode(message)
        self._flush(worker)

    def _flush(self, worker: WorkerProcess) -> None:
        try:
            written = os.write(worker.control, worker.outbox)
        except BlockingIOError:
            written = 0
        except OSError:  # the worker is gone; reap() will say so
            worker.outbox = b""
            written = 0
        worker.outbox = worker.outbox[written:]
        registered = worker.control in self.selector.get_map()
        if worker.outbox and not registered:
            self.selector.register(worker.control, selectors.EVENT_WRITE, worker)
        elif not worker.outbox and registered:
            self.selector.unregister(worker.control)

    def _drop_control(self, worker: WorkerProcess) -> None:
        if worker.control in self.selector.get_map():
            self.selector.unregister(worker.control)
        os.close(worker.control)

    def _read(self, worker: WorkerProcess) -> None:
        """A worker's reports: add them to the totals; close the pipe at its end."""
        fd = worker.reports
        if fd is None:
            return
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                self.selector.unregister(fd)
                os.close(fd)
                worker.reports = None
                return
            for message in worker.decoder.feed(data):
                self.totals.report(worker.pid, message)

    # -- signals ----------------------------------------------------------------------
    def hangup(self, why: str = "SIGHUP") -> None:
        """Validate the config again; only a good one replaces the workers' rules."""
        rules, error = read_and_validate(self.settings.config)
        if self.totals is not None:
            self.totals.reloaded(None if error else rules, error)
        if error is not None:
            diag(f"{why}: config rejected, workers keep the old routes: {error}")
            return
        self.rules = rules
        self.generation += 1
        diag(f"{why}: {self.settings.config} validated: {len(rules)} routes, sent to the workers")
        for worker in self.workers.values():
            self.send(worker, ("rules", rules))
            self.send(worker, ("generation", self.generation))

    def stop(self, sig: int) -> None:
        """SIGTERM/SIGINT: not ready at once; after `--drain-delay`, stop accepting and finish."""
        if self.stopping:
            diag("second stop signal: killing workers")
            for pid in self.workers:
                os.kill(pid, signal.SIGKILL)
            return
        if self.totals is not None:
            self.totals.stop()  # /readyz: 503 from now on
        delay = self.settings.drain_delay
        if delay and not self.drain_until:
            self.drain_until = time.monotonic() + delay
            self.drain_signal = sig
            diag(
                f"{signal.Signals(sig).name}: not ready; still serving for {delay:g}s"
                f" (--drain-delay) while load balancers let go, then stopping"
            )
            return
        self.drain_until = 0.0
        self.stopping = True
        self.sock.close()  # refused once the workers have closed their listeners too
        diag(f"stopping on {signal.Signals(sig).name}: waiting for {len(self.workers)} worker(s)")
        for pid in self.workers:
            os.kill(pid, signal.SIGTERM)

    def drained(self) -> None:
        """The drain delay is over: the graceful stop proper."""
        if self.drain_until and time.monotonic() >= self.drain_until:
            self.stop(self.drain_signal)

    def check_config(self) -> None:
        """`--watch-config`: reload once the file (or what its path resolves to) has changed."""
        now = time.monotonic()
        if not self.settings.watch_config or now < self._config_check_at:
            return
        self._config_check_at = now + CONFIG_POLL
        stamp = _config_stamp(self.settings.config)
        if stamp == self._config_stamp:
            self._config_pending = None
        elif stamp != self._config_pending:
            self._config_pending = stamp  # changed: reload once it holds still for a poll
        else:
            self._config_stamp, self._config_pending = stamp, None
            self.hangup(why="config changed")

    def _signalled(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            self.reap()
        elif signum == signal.SIGHUP:
            self.hangup()
        elif signum in (signal.SIGTERM, signal.SIGINT):
            self.stop(signum)

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> int:
        block_signals()
        _share_with_workers()
        for number in range(self.settings.workers):
            self.spawn(number)
        os.set_blocking(self._wakeup_r, False)
        os.set_blocking(self._wakeup_w, False)
        self.selector.register(self._wakeup_r, selectors.EVENT_READ)
        for sig in _SIGNALS:
            signal.signal(sig, lambda *_: None)  # the byte on the wakeup pipe is what counts
        signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # pending ones arrive now
        while self.workers or (self.restart_at and not self.stopping):
            now = time.monotonic()
            for number, when in list(self.restart_at.items()):
                if when <= now and not self.stopping:
                    del self.restart_at[number]
                    self.spawn(number)
            timeout = min([w - now for w in self.restart_at.values()] + [CONFIG_POLL])
            if self.drain_until:
                timeout = min(timeout, self.drain_until - now)
            for key, _ in self.selector.select(max(timeout, 0.01)):
                if key.fileobj == self._wakeup_r:
                    try:
                        signals = os.read(self._wakeup_r, 512)
                    except BlockingIOError:
                        signals = b""
                    for signum in signals:
                        self._signalled(signum)
                elif isinstance(key.data, WorkerProcess):
                    self._flush(key.data)
                else:
                    key.data()  # a report pipe is readable
            self.reap()
            self.check_liveness()
            self.check_config()
            self.drained()
            if self.admin is not None:
                self.admin.expire()
        diag("stopped")
        return 0


def _share_with_workers() -> None:
    """Import what every worker imports, then freeze the heap: forked workers share it.

    A worker that imports uvloop, asyncio and the serving modules after the
    fork holds its own copy of them, and the imports write into the pages it
    inherited (the interned strings, `sys.modules`, free slots of the
    allocator's pools), so those stop being shared too. Imported here, before
    the fork, the pages stay shared with the master, and PSS (the shared
    pages divided among their processes) counts them once. `gc.freeze()`
    moves everything alive into the collector's permanent generation, so no
    collection in a worker (or here) writes to those objects' headers; there
    is no `gc.collect()` first, since the holes it frees would be filled by
    the worker's own allocations, which copies those pages.

    Measured on the bench's `flexilib` target (sample library, 1 worker,
    idle, PSS of master + worker): 25.7 MB without either (and no watchfiles
    import), 25.1 MB with the freeze, 22.9 MB with both. The master's own RSS
    grows from 17 to 27 MB; most of it is shared with the workers. Handler
    kinds other than the native one, and every handler's code, stay out.
    """
    import uvloop  # noqa: F401 - imported for the workers

    import flexilib.server.worker  # noqa: F401 - imported for the workers

    gc.freeze()


def _keep_only(keep: set[int | None]) -> None:
    """In a new worker: let go of every inherited descriptor but stdio and `keep`.

    The master holds the admin socket, scrapes in progress and its other
    workers' report pipes; a worker that kept them would hold the admin port
    (and a scraper's connection) open after the master is gone.
    Each is pointed at /dev/null rather than closed: a Python object of the
    master's that owns the number may still close it later, and must not
    close something the worker opened under the same number.
    """
    null = os.open(os.devnull, os.O_RDWR)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2 or fd == null or fd in keep:
            continue
        try:
            os.fstat(fd)
        except OSError:
            continue  # the listing's own descriptor, closed since
        os.dup2(null, fd)
    os.close(null)


def _config_stamp(path: os.PathLike) -> tuple | None:
    """What identifies one state of the config: the file its path resolves to, and that file.

    A Kubernetes ConfigMap volume swaps a `..data` symlink to a new folder:
    the resolved path changes even when the new file has the same size and
    times. An edit in place changes the inode's size or times.
    """
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return (real, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_and_validate(path: os.PathLike) -> tuple[list[Rule], str | None]:
    """The config's validated rules, or the error that rejects it (then the rules are []).

    Validation imports the handler kinds' modules (their options are checked
    by their classes), which would more than double the master's memory, so
    it runs in a short-lived forked child that sends the rules back pickled.
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        return [], f"{path}: cannot read config: {getattr(exc, 'strerror', None) or exc}"
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        answer: tuple = ([], f"{path}: validation failed")
        try:
            from flexilib.config import ConfigError, parse_config
            from flexilib.runtime.handler import validate_rules

            answer = (validate_rules(parse_config(text, path), path), None)
        except ConfigError as exc:
            answer = ([], str(exc))
        except BaseException as exc:  # noqa: BLE001 - reported like a config error
            answer = ([], f"{path}: {exc!r}")
        finally:
            data = pickle.dumps(answer)
            while data:
                data = data[os.write(writer, data) :]
            os._exit(0)
    os.close(writer)
    chunks = []
    while chunk := os.read(reader, 65536):
        chunks.append(chunk)
    os.close(reader)
    os.waitpid(pid, 0)
    try:
        return pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001 - the child died before answering
        return [], f"{path}: validation failed"


def run_master(settings: Settings, rules: list[Rule]) -> int:
    """Bind, start the workers and supervise them until stopped; the exit status.

    `rules` have been validated (`read_and_validate`).
    """
    try:
        sock = listen(settings)
    except OSError as exc:
        diag(f"cannot listen on {settings.address}:{settings.port}: {exc.strerror or exc}")
        return 2
    where = sock.getsockname()
    diag(
        f"listening on {where[0]}:{where[1]} with {settings.workers} worker(s),"
        f" config {settings.config}"
    )
    totals = admin = None
    if settings.admin is not None:
        from flexilib.admin.listener import bind

        host, port = settings.admin
        try:
            admin = bind(host, port)
        except OSError as exc:
            diag(f"cannot listen on admin {host}:{port}: {exc.strerror or exc}")
            if settings.admin_given:
                return 2
            diag("serving without the admin listener (set --admin HOST:PORT or `off`)")
        else:
            totals = Totals(str(settings.config), settings.workers, rules)
            where = admin.getsockname()
            diag(f"admin listener on {where[0]}:{where[1]}: /healthz /readyz /metrics /status /")
    return Master(settings, sock, rules, totals, admin).run()
