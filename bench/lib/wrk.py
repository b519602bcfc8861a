"""Running wrk and reading its `--latency` report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_TIME = r"([\d.]+)(us|ms|s|m)"


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors of every kind (connect, read, write, timeout)
    timeouts: int
    non_2xx: int


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse(text: str) -> WrkResult:
    """Reads wrk's output; raises ValueError when it holds no result."""
    done = re.search(r"(\d+) requests in " + _TIME, text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    latency = re.search(r"Latency\s+" + _TIME + r"\s+" + _TIME + r"\s+" + _TIME, text)
    p50 = re.search(r"50%\s+" + _TIME, text)
    p99 = re.search(r"99%\s+" + _TIME, text)
    if not (done and rps and latency and p50 and p99):
        raise ValueError("wrk printed no result:\n" + text.strip())
    socket = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = sum(int(v) for v in socket.groups()) if socket else 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests=int(done.group(1)),
        seconds=_ms(done.group(2), done.group(3)) / 1e3,
        rps=float(rps.group(1)),
        p50_ms=_ms(*p50.groups()),
        p99_ms=_ms(*p99.groups()),
        max_ms=_ms(latency.group(5), latency.group(6)),
        errors=errors,
        timeouts=int(socket.group(4)) if socket else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def run(port: int, seconds: float, headers: tuple[str, ...] = (), path: str = "/") -> WrkResult:
    """`wrk -t2 -c64 -d<seconds>s --latency` against 127.0.0.1:port."""
    argv = ["wrk", "-t2", "-c64", f"-d{seconds:g}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    argv.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    return parse(out.stdout + out.stderr)
