"""The options a proxy rule takes, with their defaults, checked when the config is read."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ProxyOptions", "parse_options"]


@dataclass(frozen=True)
class ProxyOptions:
    """Defaults are the README's; times are seconds, sizes bytes."""

    connect_timeout: float = 5.0  # to open a TCP (and TLS) connection -> 502
    read_timeout: float = 60.0  # between two reads from (or writes to) the upstream -> 504
    fail_timeout: float = 10.0  # how long an upstream that failed is left out of the pool
    max_connections: int = 100  # open connections per upstream, per worker
    idle_timeout: float = 4.0  # an idle pooled connection is closed after this
    preserve_host: bool = False  # pass the client's Host instead of the upstream's
    # a request body up to this size is read whole before an upstream connection is
    # taken, so a slow sender holds no upstream connection (nginx: proxy_request_buffering)
    request_buffer: int = 1024 * 1024
    # a response is read from the upstream ahead of the client into memory up to this,
    # then into an unlinked temporary file up to `max_temp_file`, so the upstream
    # connection is free once the upstream is done (nginx: proxy_buffering)
    response_buffer: int = 64 * 1024
    max_temp_file: int = 1024 * 1024 * 1024
    # the `Upgrade` protocols passed on to the upstream; others are not (the request
    # goes as a plain request), so `h2c` cannot open a tunnel past the path mapping
    upgrade: frozenset[str] = frozenset({"websocket"})


_SECONDS = ("connect_timeout", "read_timeout", "fail_timeout", "idle_timeout")
_SIZES = ("request_buffer", "response_buffer", "max_temp_file")


def parse_options(options: tuple[tuple[str, str], ...]) -> ProxyOptions:
    """`name=value` pairs -> ProxyOptions; ValueError names the bad option."""
    values: dict[str, object] = {}
    for name, text in options:
        if name in _SECONDS:
            values[name] = _seconds(name, text)
        elif name == "max_connections":
            if not text.isdigit() or int(text) < 1:
                raise ValueError(f"max_connections must be a whole number >= 1, not {text!r}")
            values[name] = int(text)
        elif name in _SIZES:
            if not text.isdigit():
                raise ValueError(f"{name} must be a whole number of bytes, not {text!r}")
            values[name] = int(text)
        elif name == "preserve_host":
            if text not in ("true", "false"):
                raise ValueError(f"preserve_host must be true or false, not {text!r}")
            values[name] = text == "true"
        elif name == "upgrade":
            tokens = frozenset(t.strip().lower() for t in text.split(",") if t.strip())
            if any(
                not t.replace("-", "").replace(".", "").replace("/", "").isalnum() for t in tokens
            ):
                raise ValueError(
                    f"upgrade must be a comma-separated list of protocols, not {text!r}"
                )
            values[name] = tokens - {"none"}
        else:
            known = ", ".join((*_SECONDS, "max_connections", *_SIZES, "preserve_host", "upgrade"))
            raise ValueError(f"unknown option {name!r} for a proxy target (known: {known})")
    return ProxyOptions(**values)


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e6:  # also rejects nan and inf
        raise ValueError(f"{name} must be a number of seconds > 0, not {text!r}")
    return value
