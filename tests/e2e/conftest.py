"""Shared test fixtures: a real flexilib process on a free loopback port, libraries built with gcc or zig."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
NATIVE_SOURCES = REPO / "tests" / "native"
UPSTREAMS = REPO / "tests" / "upstreams"
INCLUDE = REPO / "include"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll `condition()` until it returns a truthy value; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _compile(source: str | Path, out: Path, command: Callable[[Path, Path], list[str]]) -> Path:
    """Run `command(source, tmp)` and move `tmp` over `out` once it is whole.

    `source` is a path, or a file name in tests/native. The rename means a
    server watching `out` never sees a half-written library.
    """
    source = Path(source)
    if not source.is_absolute():
        source = NATIVE_SOURCES / source
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".build")
    subprocess.run(command(source, tmp), check=True)
    tmp.with_name(tmp.name + ".o").unlink(missing_ok=True)  # zig leaves its object beside
    os.replace(tmp, out)
    return out


def build_library(source: str | Path, out: Path, *defines: str) -> Path:
    """Compile a C file from tests/native (or a path) into a shared library with gcc."""
    return _compile(
        source,
        out,
        lambda source, tmp: [
            "gcc",
            "-O2",
            "-fPIC",
            "-shared",
            "-Wall",
            "-Werror",
            "-pthread",
            f"-I{INCLUDE}",
            *[f"-D{d}" for d in defines],
            "-o",
            str(tmp),
            str(source),
        ],
    )


def build_zig_library(source: str | Path, out: Path, optimize: str = "ReleaseSafe") -> Path:
    """Compile a Zig 0.13 file (from tests/native, or a path) into a shared library.

    Uses the ziglang package of the test extras, as `make examples` does; the
    library imports `flexilib` (include/flexilib.zig). ReleaseSafe keeps Zig's
    checks (alignment, bounds) but took 15-30 s a build on the 2-core test
    machine, for its panic and stack-trace code (`zig build-lib` does not
    cache the library itself); ReleaseFast took under a second, for tests
    that need many builds.
    """
    return _compile(
        source,
        out,
        lambda source, tmp: [
            sys.executable,
            "-m",
            "ziglang",
            "build-lib",
            "-dynamic",
            "-lc",
            "-O",
            optimize,
            "--cache-dir",
            str(REPO / "build" / "zig-cache"),
            "--name",
            out.stem,
            "--dep",
            "flexilib",
            f"-Mroot={source}",
            f"-Mflexilib={INCLUDE / 'flexilib.zig'}",
            f"-femit-bin={tmp}",
        ],
    )


class Server:
    """A flexilib process started with a config written into its own folder."""

    def __init__(self, folder: Path, config: str, args: list[str], env: dict[str, str]):
        self.folder = folder
        self.config = folder / "proxy.ini"
        self.config.write_text(config)
        self.port = free_port()
        self.stdout = folder / "stdout.log"
        self.stderr = folder / "stderr.log"
        full_env = {**os.environ, **env}
        full_env.setdefault("SERVER_THREAD_COUNT", "2")
        # every server gets its own admin port: the default 8070 is shared by the whole machine
        self.admin_port = free_port()
        full_env.setdefault("SERVER_ADMIN", f"127.0.0.1:{self.admin_port}")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flexilib",
                "serve",
                "--config",
                str(self.config),
                "--port",
                str(self.port),
                "--address",
                "127.0.0.1",
                *args,
            ],
            cwd=folder,
            stdout=self.stdout.open("wb"),
            stderr=self.stderr.open("wb"),
            env=full_env,
            start_new_session=True,
        )
        wait_until(self._ready, 15, what=f"flexilib on port {self.port}")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"flexilib exited {self.process.returncode}:\n{self.errors()}")
        return "serving" in self.errors()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def errors(self) -> str:
        return self.stderr.read_text(errors="replace")

    def access_lines(self) -> list[str]:
        return self.stdout.read_text(errors="replace").splitlines()

    def wait_for_log(self, pattern: str, timeout: float = 10.0, count: int = 1) -> str:
        regex = re.compile(pattern)
        return wait_until(
            lambda: len(regex.findall(self.errors())) >= count and self.errors(),
            timeout,
            what=f"log line /{pattern}/ x{count}",
        )

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def worker_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        return self.process.returncode


@pytest.fixture(scope="session")
def examples_built() -> Path:
    """The bundled example libraries, built once per run with the project's Makefile."""
    subprocess.run(
        ["make", "-s", "-C", str(REPO / "examples"), f"ZIG_PYTHON={sys.executable}"], check=True
    )
    return REPO / "lib"


@pytest.fixture
def start_server(tmp_path):
    """start_server(config_text, *flags, env={}) -> Server; all are stopped after the test."""
    servers: list[Server] = []

    def start(config: str, *args: str, env: dict[str, str] | None = None, folder=None) -> Server:
        where = Path(folder) if folder else tmp_path / f"server{len(servers)}"
        where.mkdir(parents=True, exist_ok=True)
        server = Server(where, config, list(args), env or {})
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class RawResponse:
    """A response read off a raw socket, byte-exact."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def __repr__(self) -> str:
        return f"<RawResponse {self.status} {self.headers} {self.body[:80]!r}>"


class RawClient:
    """A plain socket speaking HTTP/1.1 by hand, for what client libraries would hide."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_response(self, head: bool = False) -> RawResponse:
        line = self.file.readline()
        if not line:
            raise ConnectionError("connection closed before a response")
        version, status, reason = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        assert version == "HTTP/1.1", line
        headers = []
        while True:
            line = self.file.readline().decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        response = RawResponse(int(status), reason, headers, b"")
        if head or response.status in (100, 101, 204, 304):
            return response
        length = response.header("content-length")
        if length is not None:
            response.body = self.file.read(int(length))
        elif (response.header("transfer-encoding") or "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.file.readline().split(b";")[0], 16)
                if size == 0:
                    while self.file.readline() not in (b"\r\n", b""):
                        pass
                    break
                parts.append(self.file.read(size))
                self.file.readline()
            response.body = b"".join(parts)
        else:
            response.body = self.file.read()
        return response

    def closed_by_peer(self) -> bool:
        """True once the server has closed the connection (EOF, nothing more to read)."""
        return self.file.read(1) == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class Upstream:
    """tests/upstreams/httpecho.py in its own process (so it can be killed for real)."""

    def __init__(self, name: str, port: int = 0) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, str(UPSTREAMS / "httpecho.py"), name, str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()
        assert line.startswith("port "), f"upstream {name} did not start: {line!r}"
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict:
        return requests.get(f"{self.url}/_stats", timeout=5).json()

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=5)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(5)


@pytest.fixture
def upstream():
    """upstream(name, port=0) -> a running Upstream; all are killed after the test."""
    started: list[Upstream] = []

    def start(name: str = "up", port: int = 0) -> Upstream:
        started.append(Upstream(name, port))
        return started[-1]

    yield start
    for one in started:
        if one.process.poll() is None:
            one.kill()
