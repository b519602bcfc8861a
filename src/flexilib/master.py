"""The master process: owns the listening socket, runs the workers, restarts the dead.

It never loads handler code, so a native library that crashes takes down
one worker, never the master. Workers inherit the listening socket through
fork (measured against SO_REUSEPORT in README "Architecture"). Signals are
taken synchronously with `sigtimedwait`, so the master has no event loop and
stays a few MB:

- SIGHUP: re-read the config (kept for workers started later) and forward it.
- SIGTERM/SIGINT: close the listener, forward, wait for the workers;
  a second one kills them at once.
- a worker that dies unasked is replaced at once; one that keeps dying soon
  after start is restarted with a growing delay (up to `MAX_BACKOFF`).
"""

from __future__ import annotations

import os
import signal
import socket
import time

from flexilib.log import diag
from flexilib.settings import Settings

__all__ = ["listen", "run_master"]

MAX_BACKOFF = 10.0
STABLE_AFTER = 5.0  # a worker alive this long resets the crash count
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
    """Hold the master's signals for `sigtimedwait` from the start (workers unblock theirs)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


class Master:
    def __init__(self, settings: Settings, sock: socket.socket, config_text: str) -> None:
        self.settings = settings
        self.sock = sock
        self.config_text = config_text  # the last version that validated: for new workers
        self.workers: dict[int, tuple[int, float]] = {}  # pid -> (slot number, start time)
        self.crashes = [0] * settings.workers
        self.restart_at: dict[int, float] = {}  # slot number -> when to start it
        self.stopping = False

    def spawn(self, number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                # SIGHUP and SIGTERM stay blocked until the worker's loop handles them (a
                # default SIGHUP would kill it while it starts); SIGINT is ignored, since a
                # Ctrl-C reaches the whole process group and the master forwards a SIGTERM
                # (taking it too would be a second stop signal: stop at once).
                signal.pthread_sigmask(signal.SIG_SETMASK, {signal.SIGHUP, signal.SIGTERM})
                for sig in _SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                from flexilib.config import parse_config
                from flexilib.server.worker import run_worker

                rules = parse_config(self.config_text, self.settings.config)
                status = run_worker(self.sock, self.settings, rules)
            except BaseException as exc:  # noqa: BLE001 - report, never return into the master
                diag(f"worker failed: {exc!r}")
            finally:
                os._exit(status)
        self.workers[pid] = (number, time.monotonic())
        diag(f"worker {number} started (pid {pid})")

    def reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            number, started = self.workers.pop(pid, (None, 0.0))
            if number is None or self.stopping:
                if number is not None:
                    diag(f"worker {number} (pid {pid}) {_describe(status)}")
                continue
            lived = time.monotonic() - started
            if lived > STABLE_AFTER:
                self.crashes[number] = 0
            delay = (
                0.0
                if self.crashes[number] == 0
                else min(0.1 * 2 ** self.crashes[number], MAX_BACKOFF)
            )
            self.crashes[number] += 1
            diag(
                f"worker {number} (pid {pid}) {_describe(status)} after {lived:.1f}s;"
                f" restarting {'now' if not delay else f'in {delay:.1f}s'}"
            )
            self.restart_at[number] = time.monotonic() + delay

    def hangup(self) -> None:
        """Validate the new config; only then keep it and tell the workers to reload."""
        text, error = read_and_validate(self.settings.config)
        if error is not None:
            diag(f"SIGHUP: config rejected, workers keep the old routes: {error}")
            return
        self.config_text = text
        for pid in self.workers:
            os.kill(pid, signal.SIGHUP)

    def stop(self, sig: int) -> None:
        if self.stopping:
            diag("second stop signal: killing workers")
            for pid in self.workers:
                os.kill(pid, signal.SIGKILL)
            return
        self.stopping = True
        self.sock.close()  # refused once the workers have closed their listeners too
        diag(f"stopping on {signal.Signals(sig).name}: waiting for {len(self.workers)} worker(s)")
        for pid in self.workers:
            os.kill(pid, signal.SIGTERM)

    def run(self) -> int:
        block_signals()
        for number in range(self.settings.workers):
            self.spawn(number)
        while self.workers or (self.restart_at and not self.stopping):
            now = time.monotonic()
            for number, when in list(self.restart_at.items()):
                if when <= now and not self.stopping:
                    del self.restart_at[number]
                    self.spawn(number)
            timeout = min([w - now for w in self.restart_at.values()] + [1.0])
            info = signal.sigtimedwait(_SIGNALS, max(timeout, 0.01))
            if info is None:
                continue
            if info.si_signo == signal.SIGCHLD:
                self.reap()
            elif info.si_signo == signal.SIGHUP:
                self.hangup()
            else:
                self.stop(info.si_signo)
            self.reap()
        diag("stopped")
        return 0


def read_and_validate(path: os.PathLike) -> tuple[str, str | None]:
    """The config's text and the error that rejects it (None when valid).

    Validation imports the handler kinds' modules (their options are checked
    by their classes), which would more than double the master's memory, so
    it runs in a short-lived forked child that reports through a pipe.
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        return "", f"{path}: cannot read config: {getattr(exc, 'strerror', None) or exc}"
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        message = b""
        try:
            from flexilib.config import ConfigError, parse_config
            from flexilib.runtime.handler import validate_rules

            validate_rules(parse_config(text, path), path)
        except ConfigError as exc:
            message = str(exc).encode()
        except BaseException as exc:  # noqa: BLE001 - reported like a config error
            message = f"{path}: {exc!r}".encode()
        finally:
            os.write(writer, message or b"\0")
            os._exit(0)
    os.close(writer)
    chunks = []
    while chunk := os.read(reader, 65536):
        chunks.append(chunk)
    os.close(reader)
    os.waitpid(pid, 0)
    answer = b"".join(chunks)
    if answer == b"\0":
        return text, None
    return text, answer.decode(errors="replace") or f"{path}: validation failed"


def run_master(settings: Settings, config_text: str) -> int:
    """Bind, start the workers and supervise them until stopped; the exit status.

    `config_text` has been validated (`read_and_validate`); each worker parses it.
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
    return Master(settings, sock, config_text).run()
