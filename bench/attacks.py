"""Issue 10's resource attacks, rerun: a worker's memory (and the proxy's answers) under each.

    .venv/bin/python bench/attacks.py [trailers|stall|proxy ...]

Each attack starts its own server (and, for `proxy`, an upstream from
tests/upstreams/) on a free loopback port and prints what it measured. To
compare with older code, run it with PYTHONPATH pointing at that code's `src`.
Bounded in count and time; no numbers are asserted (they go in the report).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIG = "from flexilib import Response\n\n\ndef handle_request(request):\n    return Response(b'x' * (20 << 20))\n"
SMALL = (
    "from flexilib import Response\n\n\ndef handle_request(request):\n    return Response('ok')\n"
)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status(pid: int, field: str) -> int:
    """A /proc/PID/status memory field (VmRSS, VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    raise KeyError(field)


class Server:
    def __init__(self, folder: Path, config: str, *flags: str) -> None:
        (folder / "proxy.ini").write_text(config)
        self.port = _port()
        self.log = (folder / "stderr.log").open("w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flexilib", "serve", "--config", str(folder / "proxy.ini")]
            + ["--port", str(self.port), "--address", "127.0.0.1", "--workers", "1", *flags],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.monotonic() + 20
        while "serving" not in Path(self.log.name).read_text():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"server did not start:\n{Path(self.log.name).read_text()}")
            time.sleep(0.05)
        self.worker = self._worker()

    def _worker(self) -> int:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
            ).stdout.split()
            if out:
                return int(out[0])
            time.sleep(0.05)
        raise SystemExit("no worker process")

    def get(self, path: str, timeout: float = 10.0) -> int:
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except OSError:
                pass
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def trailers(folder: Path) -> None:
    """One connection sends 30 MB of trailer lines after a 1-byte chunked body.

    The route is the bundled native sample (`make examples`), as in the issue: a
    native call gets every header, so merged trailers cost the most there.
    """
    server = Server(folder, f"/ = {REPO / 'lib' / 'libsample.so'}\n")
    before = _status(server.worker, "VmRSS")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n")
    line = b"X-Flood: " + b"a" * 90 + b"\r\n"
    block = line * 10_000  # 1 MB
    sent = 0
    started = time.monotonic()
    try:
        for _ in range(30):
            sock.sendall(block)
            sent += len(block)
        sock.sendall(b"\r\n")
    except OSError as exc:
        print(f"  the server closed the connection after {sent >> 20} MB sent ({exc.strerror})")
    answer = b""
    try:
        answer = sock.recv(200)
    except OSError:
        pass
    took = time.monotonic() - started
    time.sleep(0.5)
    status_line = answer.partition(b"\r\n")[0].decode(errors="replace")
    print(
        f"trailers: answer {status_line!r}"
        f" in {took:.1f}s; worker RSS {before} MB before, peak {_status(server.worker, 'VmHWM')} MB,"
        f" {_status(server.worker, 'VmRSS')} MB after"
    )
    sock.close()
    server.stop()


def stall(folder: Path, clients: int = 20, timeout: int = 5) -> None:
    """`clients` connections ask for a 20 MB response and read none of it."""
    (folder / "big.py").write_text(BIG)
    server = Server(folder, "/ = big.py\n", "--send-timeout", str(timeout))
    server.get("/")  # the body is made once, at import: count it in "before"
    before = _status(server.worker, "VmRSS")
    socks = []
    for _ in range(clients):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        socks.append(sock)
    time.sleep(2)
    during = _status(server.worker, "VmRSS")
    time.sleep(timeout + 3)
    after = _status(server.worker, "VmRSS")
    # the server's side of each connection: still established, or closed by the send timeout
    # (the client cannot tell: what the kernel already holds for it comes first)
    listing = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{server.port} )"],
        capture_output=True,
        text=True,
    ).stdout
    closed = clients - len(listing.splitlines())
    for sock in socks:
        sock.close()
    print(
        f"stall: {clients} clients not reading 20 MB: worker RSS {before} MB before,"
        f" {during} MB while stalled, {after} MB {timeout + 3}s later (send timeout {timeout}s);"
        f" {closed}/{clients} connections closed by the server"
    )
    server.stop()


def proxy(folder: Path, clients: int = 12, cap: int = 10) -> None:
    """`clients` (> the pool's `cap`) ask the proxy for 32 MB and read none; then probes."""
    upstream = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "upstreams" / "httpecho.py"), "up", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(upstream.stdout.readline().split()[1])
    rule = f"/ = http://127.0.0.1:{port} max_connections={cap} connect_timeout=2\n"
    server = Server(folder, rule)
    before = _status(server.worker, "VmRSS")
    socks = []
    for _ in range(clients):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /big?size=%d HTTP/1.1\r\nHost: t\r\n\r\n" % (32 << 20))
        socks.append(sock)
    time.sleep(3)
    statuses = [server.get("/probe") for _ in range(5)]
    print(
        f"proxy: {clients} clients not reading 32 MB through a pool of {cap}: probes {statuses};"
        f" worker RSS {before} MB before, {_status(server.worker, 'VmRSS')} MB during"
    )
    for sock in socks:
        sock.close()
    server.stop()
    upstream.kill()
    upstream.wait(5)


ATTACKS = {"trailers": trailers, "stall": stall, "proxy": proxy}


def main() -> None:
    for name in sys.argv[1:] or list(ATTACKS):
        with tempfile.TemporaryDirectory(prefix=f"flexilib-{name}-") as folder:
            ATTACKS[name](Path(folder))


if __name__ == "__main__":
    main()
