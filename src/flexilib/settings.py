"""Every option of `flexilib serve`: one table for the flags, the environment and the docs.

`OPTIONS` is the single source: `cli.py` builds its flags and `--help` from
it, `resolve()` reads the environment from it, and the reference page of the
documentation is generated from it. Flags win over variables. Every value is
checked here, once, so a bad one is one clear message naming the flag or
variable (exit status 2) before anything starts.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

__all__ = ["ADMIN_DEFAULT", "OPTIONS", "Limits", "Option", "Settings", "SettingsError", "resolve"]

ADMIN_DEFAULT = ("127.0.0.1", 8070)


class SettingsError(Exception):
    """A bad flag or variable value."""


@dataclass(frozen=True)
class Limits:
    """Connection-layer limits and timeouts (per worker process)."""

    max_header_bytes: int = 16 * 1024  # request line + header section -> 431
    max_body_bytes: int = 10 * 1024 * 1024  # buffered handler kinds -> 413
    header_timeout: float = 10.0  # to receive the header section -> 408
    body_timeout: float = 30.0  # between two pieces of a body -> 408
    keepalive_timeout: float = 15.0  # idle keep-alive connection -> closed
    max_connections: int = 10_000  # open connections per worker
    max_pipeline: int = 32  # parsed requests waiting on one connection before reading pauses
    send_timeout: float = 60.0  # a client that reads nothing of a response for this long -> closed
    underscores_in_headers: bool = False  # keep request header names with `_` (else dropped)


@dataclass(frozen=True)
class Settings:
    config: Path = Path("proxy.ini")
    sam: Path | None = None  # `--sam`: the config is then one rule, `/ = sam:TEMPLATE`
    port: int = 8069
    address: str = "0.0.0.0"
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_threads: int = 64
    workers: int = 1
    prealloc_kb: int = 8
    grace_period: float = 30.0
    worker_timeout: float = 30.0
    watch_config: bool = False  # reload the config when its file changes (a ConfigMap swap too)
    drain_delay: float = 0.0  # after SIGTERM: seconds still serving, not ready, before stopping
    # the admin listener's (host, port); None: off. `admin_given`: set by a flag or variable
    # (then failing to listen is fatal; the default's port being taken is only reported)
    admin: tuple[str, int] | None = ADMIN_DEFAULT
    admin_given: bool = False
    log_format: str = "text"
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class Option:
    """One setting: its flag, its variable, its type, bounds and meaning."""

    flag: str
    variable: str | None
    name: str  # a Settings field, or a Limits field
    kind: type
    low: float | None
    high: float | None
    help: str
    default: str  # as the docs and --help show it

    @property
    def metavar(self) -> str:
        return {int: "N", float: "SECONDS", str: "TEXT", Path: "PATH", bool: "SWITCH"}[self.kind]


OPTIONS: tuple[Option, ...] = (
    Option("--config", None, "config", Path, None, None, "the routing config", "./proxy.ini"),
    Option(
        "--sam",
        None,
        "sam",
        Path,
        None,
        None,
        "serve an AWS SAM template's functions at / (instead of --config)",
        "none",
    ),
    Option("--port", "PORT", "port", int, 0, 65535, "TCP port", "8069"),
    Option(
        "--address",
        "SERVER_ADDRESS",
        "address",
        str,
        None,
        None,
        "listen address, IPv4 or IPv6 (`::` also accepts IPv4)",
        "0.0.0.0",
    ),
    Option(
        "--threads",
        "SERVER_THREAD_COUNT",
        "threads",
        int,
        1,
        1024,
        "threads kept ready to run native and other blocking handlers",
        "number of CPUs",
    ),
    Option(
        "--max-threads",
        "SERVER_MAX_THREADS",
        "max_threads",
        int,
        1,
        4096,
        "the pool grows toward this while every thread is busy; equal to the thread count"
        " gives a fixed pool like the original's",
        "max(threads, 64)",
    ),
    Option("--workers", "SERVER_WORKERS", "workers", int, 1, 256, "worker processes", "1"),
    Option(
        "--prealloc-kb",
        "RESPONSE_PREALLOCATION_KB",
        "prealloc_kb",
        int,
        1,
        1024 * 1024,
        "per-thread buffer a native request is marshalled into",
        "8",
    ),
    Option(
        "--max-header-bytes",
        "SERVER_MAX_HEADER_BYTES",
        "max_header_bytes",
        int,
        256,
        None,
        "request line + header section; more is 431",
        "16384",
    ),
    Option(
        "--max-body-bytes",
        "SERVER_MAX_BODY_BYTES",
        "max_body_bytes",
        int,
        0,
        None,
        "request body for buffered kinds; more is 413",
        "10485760",
    ),
    Option(
        "--header-timeout",
        "SERVER_HEADER_TIMEOUT",
        "header_timeout",
        float,
        0.1,
        None,
        "seconds to receive a header section; then 408",
        "10",
    ),
    Option(
        "--body-timeout",
        "SERVER_BODY_TIMEOUT",
        "body_timeout",
        float,
        0.1,
        None,
        "seconds between two pieces of a body; then 408",
        "30",
    ),
    Option(
        "--keepalive-timeout",
        "SERVER_KEEPALIVE_TIMEOUT",
        "keepalive_timeout",
        float,
        0.1,
        None,
        "seconds an idle keep-alive connection is kept",
        "15",
    ),
    Option(
        "--send-timeout",
        "SERVER_SEND_TIMEOUT",
        "send_timeout",
        float,
        0.1,
        None,
        "seconds a client may read nothing of a response before its connection is closed",
        "60",
    ),
    Option(
        "--underscores-in-headers",
        "SERVER_UNDERSCORES_IN_HEADERS",
        "underscores_in_headers",
        bool,
        None,
        None,
        "keep request headers whose names contain `_` (off: they are dropped, as nginx does,"
        " since `X_Real_IP` and `X-Real-IP` look the same to CGI-style handlers)",
        "off",
    ),
    Option(
        "--max-connections",
        "SERVER_MAX_CONNECTIONS",
        "max_connections",
        int,
        1,
        None,
        "open connections per worker; more are closed at once",
        "10000",
    ),
    Option(
        "--grace-period",
        "SERVER_GRACE_PERIOD",
        "grace_period",
        float,
        0,
        None,
        "seconds to finish requests in flight on SIGTERM/SIGINT",
        "30",
    ),
    Option(
        "--worker-timeout",
        "SERVER_WORKER_TIMEOUT",
        "worker_timeout",
        float,
        0,
        None,
        "a worker whose event loop has not ticked for this long is killed and replaced (0: never)",
        "30",
    ),
    Option(
        "--watch-config",
        "SERVER_WATCH_CONFIG",
        "watch_config",
        bool,
        None,
        None,
        "reload the config (validated, as on SIGHUP) when its file changes, including a"
        " Kubernetes ConfigMap's symlink swap; checked twice a second",
        "off",
    ),
    Option(
        "--drain-delay",
        "SERVER_DRAIN_DELAY",
        "drain_delay",
        float,
        0,
        3600,
        "on SIGTERM: seconds to go on accepting and serving while /readyz answers 503,"
        " before the graceful stop",
        "0",
    ),
    Option(
        "--admin",
        "SERVER_ADMIN",
        "admin",
        str,
        None,
        None,
        "HOST:PORT of the admin listener (/healthz, /readyz, /metrics, /status, /); off: none",
        "127.0.0.1:8070",
    ),
    Option(
        "--log-format",
        "SERVER_LOG_FORMAT",
        "log_format",
        str,
        None,
        None,
        "text (the original's access-log line) or json (one object per line, diagnostics too)",
        "text",
    ),
)

_LIMITS = {f.name for f in fields(Limits)}


_BOOLEAN = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


def _value(option: Option, text: str, source: str) -> object:
    if option.kind in (str, Path):
        return option.kind(text)
    if option.kind is bool:
        if text.lower() not in _BOOLEAN:
            raise SettingsError(f"{source}={text!r} is not on or off")
        return _BOOLEAN[text.lower()]
    try:
        value = option.kind(text)
    except ValueError:
        raise SettingsError(f"{source}={text!r} is not a valid {option.kind.__name__}") from None
    low, high = option.low, option.high
    if low is not None and value < low or high is not None and value > high:
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise SettingsError(f"{source}={text!r} is out of range ({bounds})")
    return value


def _admin_address(text: str) -> tuple[str, int] | None:
    """`HOST:PORT` (IPv6 as `[::1]:8070`) -> (host, port); `off` -> None."""
    if text.lower() == "off":
        return None
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
        number = int(port)
        if not sep or not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise SettingsError(
            f"admin address {text!r} is not HOST:PORT (an IP address and a port) or `off`"
        ) from None
    return host, number


def resolve(flags: Mapping[str, object], environ: Mapping[str, str] | None = None) -> Settings:
    """Merge parsed flags (keyed by option name; None = not given) with the environment."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    limits: dict[str, object] = {}
    sources: dict[str, str] = {}  # option name -> the flag or variable that gave it
    for option in OPTIONS:
        flag = flags.get(option.name)
        if flag is not None and flag != "":
            sources[option.name] = option.flag
            value = _value(option, str(flag), option.flag)
        elif option.variable and environ.get(option.variable, "").strip():
            sources[option.name] = option.variable
            value = _value(option, environ[option.variable].strip(), option.variable)
        else:
            continue
        (limits if option.name in _LIMITS else values)[option.name] = value
    if "admin" in values:
        values["admin"] = _admin_address(values["admin"])
        values["admin_given"] = True
    if values.get("log_format", "text") not in ("text", "json"):
        raise SettingsError(f"log format {values['log_format']!r} is not `text` or `json`")
    address = values.get("address", Settings.address)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise SettingsError(f"listen address {address!r} is not an IPv4 or IPv6 address") from None
    threads = values.get("threads", os.cpu_count() or 1)
    if "max_threads" not in values:
        values["max_threads"] = max(threads, Settings.max_threads)
    elif values["max_threads"] < threads:
        raise SettingsError(
            f"{sources['max_threads']} ({values['max_threads']}) is below"
            f" {sources.get('threads', 'the number of CPUs')} ({threads})"
        )
    return replace(Settings(**values), limits=Limits(**limits))
