"""Absolute URLs as the JS `URL` parser serialises them.

`request.url` and a redirect's `location` are absolute on Cloudflare, with
the scheme and host lower-cased, the default port dropped and an empty path
written as "/" (`http://Example.COM:80` -> `http://example.com/`). A string
without a scheme, or an http(s) URL without a valid host, is the JS
`TypeError: Invalid URL`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["normalize_url"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_BAD_HOST_CHARS = frozenset(' \t\r\n<>"\\^`{|}/?#@')


def _invalid(url: object) -> TypeError:
    return TypeError(f"Invalid URL: {url!r}")


def normalize_url(url: str) -> str:
    """`url` serialised as JS `new URL(url).href` would be; TypeError when it is not absolute."""
    if not isinstance(url, str):
        raise _invalid(url)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:  # a port that is not a number, a bad IPv6 literal
        raise _invalid(url) from exc
    scheme = parts.scheme.lower()
    if not scheme:
        raise _invalid(url)
    if scheme not in _DEFAULT_PORTS:
        return url.strip()
    host = parts.hostname
    if not host or _BAD_HOST_CHARS.intersection(host):
        raise _invalid(url)
    if ":" in host:
        host = f"[{host}]"
    authority = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        authority = f"{userinfo}@{authority}"
    href = f"{scheme}://{authority}{parts.path or '/'}"
    if parts.query:
        href += f"?{parts.query}"
    if parts.fragment:
        href += f"#{parts.fragment}"
    return href
