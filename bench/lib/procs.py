"""Starting, watching and stopping server processes, and reading their cost from /proc.

Every server runs in its own session (process group), so stopping it reaches
every process it spawned (nginx's worker, granian's workers, flexilib's
workers). CPU time and memory are summed over the live process tree found through
parent ids, plus the CPU time of children the tree has already reaped.

Memory is read two ways: RSS (`VmRSS`), which counts a page once in every
process that maps it, so a forked worker's pages shared with its master are
counted twice; and PSS (`Pss:` of /proc/PID/smaps_rollup), which divides each
page among the processes sharing it, so the tree's sum counts it once.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from field 3 on (after the command name), or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2 :].decode().split()


def process_tree(root: int) -> list[int]:
    """root and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of every process in the tree, plus what they reaped (cutime + cstime)."""
    ticks = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / CLK_TCK


def _tree_sum_kb(root: int, file: str, field: str) -> int:
    """Sum of one `Field:  N kB` line of /proc/PID/`file` over the tree (unreadable: 0)."""
    total = 0
    for pid in process_tree(root):
        try:
            text = Path(f"/proc/{pid}/{file}").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(field):
                total += int(line.split()[1])
                break
    return total


def tree_rss_kb(root: int) -> int:
    """Sum of VmRSS over the tree, in KiB."""
    return _tree_sum_kb(root, "status", "VmRSS:")


def tree_pss_kb(root: int) -> int:
    """Sum of PSS over the tree, in KiB: shared pages counted once (smaps_rollup)."""
    return _tree_sum_kb(root, "smaps_rollup", "Pss:")


@dataclass(frozen=True)
class MemorySample:
    seconds: float  # since the sampler started
    rss_kb: int
    pss_kb: int


def tree_memory(root: int, since: float = 0.0) -> MemorySample:
    """The tree's RSS and PSS now."""
    return MemorySample(time.monotonic() - since, tree_rss_kb(root), tree_pss_kb(root))


def settled_memory(root: int, interval: float = 0.25, limit: float = 5.0) -> MemorySample:
    """The tree's memory once it holds still: two reads `interval` apart within 64 KiB of PSS.

    A server that has answered may still be finishing its start (a watcher
    thread importing its modules, a pool thread starting); read at once, its
    idle figure would depend on how fast the machine happened to be. Gives
    up after `limit` seconds and returns the last read.
    """
    deadline = time.monotonic() + limit
    last = tree_memory(root)
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = tree_memory(root)
        if abs(now.pss_kb - last.pss_kb) < 64:
            return now
        last = now
    return last


class MemorySampler:
    """Samples the tree's RSS and PSS in a thread while a load runs; keeps every sample."""

    def __init__(self, root: int, interval: float = 0.25) -> None:
        self.root = root
        self.interval = interval
        self.samples: list[MemorySample] = []
        self._started = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def peak_rss_kb(self) -> int:
        return max(s.rss_kb for s in self.samples)

    @property
    def peak_pss_kb(self) -> int:
        return max(s.pss_kb for s in self.samples)

    def _run(self) -> None:
        while True:
            self.samples.append(tree_memory(self.root, self._started))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> MemorySampler:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(tree_memory(self.root, self._started))


class StartError(Exception):
    """A server did not come up: it exited, or did not answer in time."""


@dataclass
class Answer:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


def get(
    port: int, path: str = "/", headers: dict[str, str] | None = None, timeout: float = 5
) -> Answer:
    """One GET carrying only `Host` (plus `headers`), as wrk sends it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return Answer(resp.status, resp.read(), resp.getheaders())
    finally:
        conn.close()


class ServerProcess:
    """A server started in its own session, its stdout (the access log) and stderr to files."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        workdir: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.stdout_path = workdir / f"{name}.stdout.log"
        self.stderr_path = workdir / f"{name}.stderr.log"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr_tail(self, lines: int = 8) -> str:
        try:
            with open(self.stderr_path, errors="replace") as f:
                return "".join(deque(f, maxlen=lines)).rstrip()
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 20) -> Answer:
        """Polls `GET /` until the server answers anything; raises StartError if it never does."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise StartError(f"{self.name} exited with status {self.proc.returncode}")
            try:
                return get(self.port, timeout=2)
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise StartError(f"{self.name} did not answer within {timeout:.0f} s")
            time.sleep(0.05)

    def stop(self, grace: float = 5) -> None:
        """SIGTERM to the whole process group, SIGKILL after `grace` seconds."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:  # stragglers in the group, even after the leader exited
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
