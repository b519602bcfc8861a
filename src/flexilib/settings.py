"""Command line and environment -> Settings. Flags win over variables.

Every value is checked here, once, so a bad one is a single clear message
naming the flag or variable (exit status 2) before anything starts.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from flexilib.http.limits import Limits

__all__ = ["Settings", "SettingsError", "ENVIRONMENT", "resolve"]


class SettingsError(Exception):
    """A bad flag or variable value."""


@dataclass(frozen=True)
class Settings:
    config: Path = Path("proxy.ini")
    port: int = 8069
    address: str = "0.0.0.0"
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_threads: int = 64
    workers: int = 1
    prealloc_kb: int = 8
    grace_period: float = 30.0
    limits: Limits = field(default_factory=Limits)


# (variable, flag attribute, parser, lower bound, upper bound)
ENVIRONMENT = (
    ("PORT", "port", int, 0, 65535),
    ("SERVER_ADDRESS", "address", str, None, None),
    ("SERVER_THREAD_COUNT", "threads", int, 1, 1024),
    ("SERVER_MAX_THREADS", "max_threads", int, 1, 4096),
    ("SERVER_WORKERS", "workers", int, 1, 256),
    ("RESPONSE_PREALLOCATION_KB", "prealloc_kb", int, 1, 1024 * 1024),
)

# flag attribute -> (Limits field, lower bound)
LIMIT_FLAGS = {
    "max_header_bytes": ("max_header_bytes", 256),
    "max_body_bytes": ("max_body_bytes", 0),
    "header_timeout": ("header_timeout", 0.1),
    "body_timeout": ("body_timeout", 0.1),
    "keepalive_timeout": ("keepalive_timeout", 0.1),
    "max_connections": ("max_connections", 1),
}


def _number(text: str, kind: type, name: str, low, high):
    try:
        value = kind(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a valid {kind.__name__}") from None
    if low is not None and value < low or high is not None and value > high:
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise SettingsError(f"{name}={text!r} is out of range ({bounds})")
    return value


def resolve(flags: dict, environ: dict[str, str] | None = None) -> Settings:
    """Merge parsed flags (None = not given) with the environment into Settings."""
    environ = os.environ if environ is None else environ
    values: dict = {}
    for variable, attr, kind, low, high in ENVIRONMENT:
        flag = flags.get(attr)
        if flag is not None:
            source, text = f"--{attr.replace('_', '-')}", str(flag)
        elif environ.get(variable, "").strip():
            source, text = variable, environ[variable].strip()
        else:
            continue
        values[attr] = text if kind is str else _number(text, kind, source, low, high)
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
            f"SERVER_MAX_THREADS ({values['max_threads']}) is below SERVER_THREAD_COUNT ({threads})"
        )
    limits = {}
    for attr, (name, low) in LIMIT_FLAGS.items():
        if flags.get(attr) is not None:
            limits[name] = _number(
                str(flags[attr]),
                type(getattr(Limits, name)),
                "--" + attr.replace("_", "-"),
                low,
                None,
            )
    if flags.get("grace_period") is not None:
        values["grace_period"] = _number(
            str(flags["grace_period"]), float, "--grace-period", 0, None
        )
    if flags.get("config"):
        values["config"] = Path(flags["config"])
    return Settings(**values, limits=Limits(**limits))
