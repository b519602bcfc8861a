"""WAGI, the WebAssembly Gateway Interface: a request as CGI variables, a CGI response back.

WAGI (deislabs/wagi, also run by Spin's WAGI executor) runs a WASI command
per request with the request in environment variables (RFC 3875 names plus
`X_MATCHED_ROUTE`, `X_FULL_URL`, `X_RAW_PATH_INFO`) and the body on stdin;
the module prints header lines, a blank line and the body. This module is
pure translation (no engine), so it is unit-tested on its own.

Two deliberate choices, both from RFC 3875 and web servers' practice:
`Authorization` and `Connection` are not passed as `HTTP_*` (as WAGI does:
credentials are not the module's unless it is given them another way), and a
request header whose name holds `_` is dropped, because `X_Real_IP` would
otherwise become the same `HTTP_X_REAL_IP` as `X-Real-IP` and let a client
forge a header a proxy in front of us vouches for (nginx drops them too).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from flexilib.request import Request
from flexilib.response import Response

__all__ = ["CgiError", "cgi_environ", "parse_cgi"]

_SKIPPED = frozenset({b"authorization", b"connection", b"content-type", b"content-length"})
_TOKEN = re.compile(rb"[!#$%&'*+.^`|~0-9A-Za-z-]+")
_STATUS = re.compile(rb"([1-9][0-9]{2})(?:[ \t]+(.*))?")
_DROPPED = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


class CgiError(ValueError):
    """The module's output is not a CGI response (the client gets 502)."""


def _text(raw: bytes) -> str:
    """Environment values are handed over as UTF-8 when they are, else byte for byte (latin-1)."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def cgi_environ(request: Request, route: bytes) -> list[tuple[str, str]]:
    """The WAGI variables for `request` matched by the rule whose path prefix is `route`.

    `SCRIPT_NAME` is the prefix without its trailing `/` and `PATH_INFO` the
    rest of the path, percent-decoded (`X_RAW_PATH_INFO` keeps it as sent), so
    `SCRIPT_NAME + PATH_INFO` is the path. `X_MATCHED_ROUTE` is the prefix in
    WAGI's wildcard syntax (`/wasm/...`), as every flexilib rule is a prefix.
    `SERVER_NAME` and `SERVER_PORT` come from the `Host` header, the port
    defaulting to the scheme's.
    """
    raw_path, _, query = request.raw_target.partition(b"?")
    script = route.rstrip(b"/")
    if not raw_path.startswith(script):  # a header rule's prefix may not be this path's
        script = b""
    raw_info = raw_path[len(script) :]
    host = request.header(b"host") or b""
    name, colon, host_port = host.rpartition(b":")
    if not colon or not host_port.isdigit() or name.endswith(b":"):  # no port, or bare IPv6
        name, host_port = host, b"443" if request.scheme == "https" else b"80"
    body = request.body
    env = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "flexilib"),
        ("SERVER_PROTOCOL", f"HTTP/{request.http_version}"),
        ("SERVER_NAME", _text(name) or "localhost"),
        ("SERVER_PORT", host_port.decode()),
        ("REQUEST_METHOD", _text(request.raw_method)),
        ("SCRIPT_NAME", _text(script)),
        ("PATH_INFO", _text(unquote_to_bytes(raw_info))),
        ("PATH_TRANSLATED", _text(unquote_to_bytes(raw_info))),
        ("X_RAW_PATH_INFO", _text(raw_info)),
        ("QUERY_STRING", _text(query)),
        ("REMOTE_ADDR", request.client[0]),
        ("REMOTE_HOST", request.client[0]),
        ("REMOTE_USER", ""),
        ("AUTH_TYPE", ""),
        ("CONTENT_TYPE", _text(request.header(b"content-type") or b"")),
        ("CONTENT_LENGTH", str(len(body)) if body else ""),
        ("X_MATCHED_ROUTE", _text(script + b"/...")),
        ("X_FULL_URL", _text(b"%s://%s%s" % (request.scheme.encode(), host, request.raw_target))),
    ]
    headers: dict[str, list[str]] = {}
    for raw_name, value in request.raw_headers:
        lower = raw_name.lower()
        if lower in _SKIPPED or b"_" in raw_name or not _TOKEN.fullmatch(raw_name):
            continue
        key = "HTTP_" + raw_name.decode("ascii").upper().replace("-", "_")
        headers.setdefault(key, []).append(_text(value))
    env.extend((key, ", ".join(values)) for key, values in headers.items())
    return env


def parse_cgi(output: bytes) -> Response:
    """A CGI response (header lines, blank line, body) -> Response; CgiError when malformed.

    Lines end in LF or CRLF. `Status: 404 Not Found` sets the status and
    reason; a `Location` without a `Status` is a 302 (RFC 3875 6.2.3); output
    that ends after its header lines has an empty body. Framing headers
    (`Content-Length`, `Transfer-Encoding`, `Connection`) are the server's.
    """
    if not output:
        raise CgiError("the module wrote nothing to stdout")
    status, reason = 0, None
    headers: list[tuple[str, str]] = []
    location = False
    position = 0
    while True:
        end = output.find(b"\n", position)
        line = output[position:] if end < 0 else output[position:end]
        position = len(output) if end < 0 else end + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            break
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise CgiError(f"not a header line: {line[:80]!r}")
        value = value.strip(b" \t")
        if any(byte < 32 and byte != 9 or byte == 127 for byte in value):
            raise CgiError(f"control character in header {name[:40]!r}")
        lower = name.decode("ascii").lower()
        if lower == "status":
            match = _STATUS.fullmatch(value)
            if match is None or not 200 <= int(match.group(1)) <= 599:
                raise CgiError(f"bad Status header {value[:40]!r}")
            status = int(match.group(1))
            reason = match.group(2).decode("latin-1") if match.group(2) else None
            continue
        if lower == "location":
            location = True
        if lower not in _DROPPED:
            headers.append((name.decode("ascii"), value.decode("latin-1")))
        if end < 0:
            break
    if not status:
        status = 302 if location else 200
    return Response(output[position:], status, headers, reason)
