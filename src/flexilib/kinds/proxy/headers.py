"""What crosses the proxy in each direction, as nginx users expect it.

Hop-by-hop headers describe one connection, not the message, so they are
dropped both ways: `Connection` and every header it names, `Keep-Alive`,
`Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, and `Upgrade` unless the
request is being upgraded. The proxy frames bodies itself, so it also sets
`Content-Length`/`Transfer-Encoding` itself. Towards the client, the
upstream's `Date` and `Server` give way to flexilib's own (nginx does the
same); `Expect` is answered by flexilib and not forwarded.

Who the client is comes from the connection, never from the client: the
proxy appends the peer address to `X-Forwarded-For` (earlier entries are
the client's word, kept as nginx's `$proxy_add_x_forwarded_for` keeps them:
an upstream trusts only the last one), and replaces `X-Real-IP`,
`Forwarded` (`for=ADDRESS;proto=SCHEME`), `X-Forwarded-Proto` and
`X-Forwarded-Host`. `CF-Connecting-IP` is Cloudflare's to set and is dropped.
"""

from __future__ import annotations

__all__ = ["body_framing", "request_head", "response_headers"]

_HOP = frozenset(
    (b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade")
)
# set by the proxy from its own knowledge rather than copied from the client
_REPLACED = frozenset(
    (
        b"host",
        b"content-length",
        b"expect",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-real-ip",
        b"forwarded",
        b"cf-connecting-ip",
    )
)
_FROM_UPSTREAM_DROPPED = frozenset((b"content-length", b"date", b"server"))


def _named_by_connection(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The header names listed in `Connection` (hop-by-hop for this message only)."""
    named: set[bytes] = set()
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection":
            named.update(token.strip().lower() for token in value.split(b","))
    return frozenset(named)


def _hop_by_hop(lower: bytes, named: frozenset[bytes]) -> bool:
    return lower in _HOP or lower.startswith(b"proxy-") or lower in named


def body_framing(headers: list[tuple[bytes, bytes]]) -> tuple[bool, int | None]:
    """How the client's request body is framed: (chunked, content length)."""
    chunked = False
    length = None
    for name, value in headers:
        lower = name.lower()
        if lower == b"transfer-encoding":
            chunked = True
        elif lower == b"content-length":
            value = value.strip(b" \t")  # optional whitespace, trimmed as llhttp does
            if value.isdigit():
                length = int(value)
    return chunked, None if chunked else length


def request_head(
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    host: bytes,
    preserve_host: bool,
    client_ip: bytes,
    scheme: bytes,
    length: int | None,
    upgrade: bool,
) -> bytes:
    """The request line and header section sent upstream.

    `length` None with a body means it is streamed chunked (the caller writes the
    chunks); `upgrade` keeps `Upgrade` and says `Connection: upgrade`.
    """
    named = _named_by_connection(headers)
    lines = []
    forwarded_for = []
    client_host = None
    chunked = False
    for name, value in headers:
        lower = name.lower()
        if _hop_by_hop(lower, named):
            if lower == b"upgrade" and upgrade:
                lines.append(b"%s: %s\r\n" % (name, value))
            elif lower == b"transfer-encoding":
                chunked = True
            continue
        if lower in _REPLACED:
            if lower == b"host":
                client_host = value
            continue
        if lower == b"x-forwarded-for":
            forwarded_for.append(value)
            continue
        lines.append(b"%s: %s\r\n" % (name, value))
    forwarded_for.append(client_ip)
    node = b'"[%s]"' % client_ip if b":" in client_ip else client_ip  # RFC 7239 quoting
    top = [
        b"%s %s HTTP/1.1\r\nHost: %s\r\n"
        % (method, target, client_host if preserve_host and client_host else host),
        b"X-Forwarded-For: %s\r\n" % b", ".join(forwarded_for),
        b"X-Real-IP: %s\r\n" % client_ip,
        b"Forwarded: for=%s;proto=%s\r\n" % (node, scheme),
        b"X-Forwarded-Proto: %s\r\n" % scheme,
    ]
    if client_host is not None:
        top.append(b"X-Forwarded-Host: %s\r\n" % client_host)
    if length is not None:
        lines.append(b"Content-Length: %d\r\n" % length)
    elif chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    if upgrade:
        lines.append(b"Connection: upgrade\r\n")
    lines.append(b"\r\n")
    return b"".join(top + lines)


def response_headers(
    headers: list[tuple[bytes, bytes]], upgrade: bool = False
) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers that go on to the client (see the module docstring)."""
    named = _named_by_connection(headers)
    kept = []
    for name, value in headers:
        lower = name.lower()
        if _hop_by_hop(lower, named):
            if lower == b"upgrade" and upgrade:
                kept.append((name, value))
            continue
        if lower not in _FROM_UPSTREAM_DROPPED:
            kept.append((name, value))
    if upgrade:
        kept.append((b"Connection", b"Upgrade"))
    return kept
