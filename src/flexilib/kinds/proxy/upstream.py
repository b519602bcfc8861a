"""One upstream URL of a proxy rule, and the balancer that picks among a rule's URLs.

Path mapping follows nginx's `proxy_pass`: a URL without a path forwards the
request target unchanged; a URL with a path (even `/`) replaces the part of
the normalised path (`Request.normalized_path`) that the rule's prefix
matched with that path. The query string,
being part of the rest of the target, is kept either way.

Balancing is "least outstanding requests", ties broken round robin: with
equal load it is plain round robin, and a slow upstream gets fewer new
requests while it is behind. An upstream that failed (refused or timed out)
is left out for `fail_timeout` seconds; a rule with one URL never leaves it
out (there is nothing else to send to), as nginx does.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

__all__ = ["Balancer", "Upstream", "parse_upstream"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class Upstream:
    """Where to connect, what `Host` to send and how to map the target, for one URL."""

    __slots__ = (
        "url",
        "host",
        "port",
        "host_header",
        "base",
        "ssl",
        "pool",
        "outstanding",
        "down_until",
    )

    def __init__(self, url: str) -> None:
        scheme, host, port, host_header, base = parse_upstream(url)
        self.url = url
        self.host = host
        self.port = port
        self.host_header = host_header
        self.base = base  # None: forward the target unchanged
        self.ssl = ssl.create_default_context() if scheme == "https" else None
        self.pool = None  # a ConnectionPool, bound when the first request comes
        self.outstanding = 0  # requests in flight to this upstream
        self.down_until = 0.0  # left out of balancing until this loop time

    def map_target(self, target: bytes, path: bytes, prefix: bytes) -> bytes:
        """The request target to send upstream.

        `target` is the client's, `path` its normalised path (which the rule's
        `prefix` matched). Without a base path the target goes as the client
        sent it (nginx's `proxy_pass` without a URI); with one, the normalised
        path is mapped, so no spelling of `..` reaches outside the base.
        """
        if self.base is None:
            return target
        query = target.find(b"?")
        return self.base + path[len(prefix) :] + (target[query:] if query >= 0 else b"")

    def __repr__(self) -> str:
        return f"<Upstream {self.url}>"


def parse_upstream(url: str) -> tuple[str, str, int, bytes, bytes | None]:
    """`http[s]://host[:port][/path]` -> (scheme, host, port, Host header, base path or None)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"upstream {url!r} must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"upstream {url!r}: credentials in the URL are not supported")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(f"upstream {url!r} must not have a query string or fragment")
    host = parts.hostname
    if not host:
        raise ValueError(f"upstream {url!r} has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"upstream {url!r} has a bad port") from None
    default = _DEFAULT_PORTS[scheme]
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    shown = f"[{host}]" if ":" in host else host
    if port is not None and port != default:
        shown += f":{port}"
    base = parts.path.encode("latin-1") if parts.path else None
    return scheme, host, port or default, shown.encode("ascii"), base


class Balancer:
    """Least outstanding requests, round robin among equals, skipping upstreams taken out."""

    def __init__(self, upstreams: list[Upstream], fail_timeout: float) -> None:
        self.upstreams = upstreams
        self.fail_timeout = fail_timeout
        self._next = 0

    def pick(self, now: float, tried: list[Upstream]) -> Upstream | None:
        """The upstream for the next attempt, or None when every one is out or tried."""
        upstreams = self.upstreams
        count = len(upstreams)
        if count == 1:
            return None if tried else upstreams[0]
        start = self._next
        best = None
        for i in range(count):
            index = (start + i) % count
            upstream = upstreams[index]
            if upstream.down_until > now or upstream in tried:
                continue
            if best is None or upstream.outstanding < best.outstanding:
                best, chosen = upstream, index
        if best is not None:
            # the turn passes to the one after the chosen upstream, not after `start`:
            # else a dead upstream's turn goes to its successor (5/3 instead of 4/4)
            self._next = (chosen + 1) % count
        return best

    def failed(self, upstream: Upstream, now: float) -> bool:
        """Take `upstream` out for `fail_timeout`; False when it is the only one (kept in)."""
        if len(self.upstreams) == 1:
            return False
        upstream.down_until = now + self.fail_timeout
        return True
