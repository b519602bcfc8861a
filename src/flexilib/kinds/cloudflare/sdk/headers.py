"""Header lists kept by the Fetch API's rules, as the real Workers runtime applies them.

A JS `Headers` object lower-cases names, rejects names that are not HTTP
tokens and values that carry CR, LF or NUL (header injection), trims
surrounding whitespace, lists names in sorted order and joins repeated names
with ", ", except `set-cookie`, whose values stay apart. The workers SDK
accepts a dict or a list of `(name, value)` pairs for it; anything else is a
TypeError there, so it is here too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from http.client import HTTPMessage

__all__ = ["HeadersInit", "combined", "header_pairs", "to_message"]

HeadersInit = Mapping[str, object] | Iterable[tuple[str, object]]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_WHITESPACE = " \t\r\n"


def _pair(name: object, value: object) -> tuple[str, str]:
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise TypeError(f"Invalid header name: {name!r}")
    text = str(value).strip(_WHITESPACE)
    if "\r" in text or "\n" in text or "\0" in text:
        raise TypeError(f"Invalid header value for {name!r}")
    return name.lower(), text


def header_pairs(init: HeadersInit | None) -> list[tuple[str, str]]:
    """Validated `(lower-case name, value)` pairs, in the order given."""
    if init is None:
        return []
    if isinstance(init, Mapping):
        return [_pair(name, value) for name, value in init.items()]
    if isinstance(init, (list, tuple)):
        pairs = []
        for item in init:
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise TypeError("headers must be (name, value) pairs")
            pairs.append(_pair(item[0], item[1]))
        return pairs
    raise TypeError("Received unexpected type for headers argument")


def combined(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs as a JS `Headers` lists them: sorted, repeats joined, set-cookie apart."""
    merged: dict[str, list[str]] = {}
    for name, value in pairs:
        merged.setdefault(name, []).append(value)
    out: list[tuple[str, str]] = []
    for name in sorted(merged):
        values = merged[name]
        if name == "set-cookie":
            out.extend((name, value) for value in values)
        else:
            out.append((name, ", ".join(values)))
    return out


def to_message(pairs: Iterable[tuple[str, str]]) -> HTTPMessage:
    """The `http.client.HTTPMessage` the SDK's `Request.headers` returns for these pairs."""
    message = HTTPMessage()
    for name, value in combined(pairs):
        message[name] = value
    return message
