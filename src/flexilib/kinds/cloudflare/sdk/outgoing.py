"""`workers.fetch`: outgoing HTTP requests from a worker.

Same call shape as the SDK: `await fetch(url_or_request, method=, headers=,
body=, redirect=, ...)`, resolving to a `Response` whatever its status (only
a network failure raises, as `OSError`). `redirect="follow"` (the default)
follows redirects, `"manual"` returns the 3xx response itself, `"error"`
raises TypeError on one. Options the SDK passes through to JS and flexilib
has no use for (`cf`, ...) are accepted and ignored.

The standard library's client runs in a thread so the event loop keeps
serving; no proxy from the environment is used, as a worker's fetch uses none.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from http.client import HTTPResponse
from typing import Any

from flexilib.kinds.cloudflare.sdk.headers import combined
from flexilib.kinds.cloudflare.sdk.request import Request
from flexilib.kinds.cloudflare.sdk.response import Response

__all__ = ["fetch"]


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    """Hand a 3xx back instead of following it (redirect="manual" / "error")."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _opener(follow: bool) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if not follow:
        handlers.append(_KeepRedirects())
    return urllib.request.build_opener(*handlers)


def _as_response(reply: HTTPResponse | urllib.error.HTTPError, url: str) -> Response:
    data = reply.read()
    final_url = reply.geturl()
    pairs = [(name.lower(), value) for name, value in reply.headers.items()]
    return Response._received(
        reply.status, reply.reason or "", pairs, data, final_url, final_url != url
    )


def _send(request: Request) -> Response:
    method = str(request._method)
    outgoing = urllib.request.Request(request.url, data=request._consume() or None, method=method)
    for name, value in combined(request._pairs):
        outgoing.add_header(name, value)
    try:
        with _opener(request.redirect == "follow").open(outgoing) as reply:
            return _as_response(reply, request.url)
    except urllib.error.HTTPError as reply:  # any status >= 400, and kept 3xx
        with reply:
            response = _as_response(reply, request.url)
        if request.redirect == "error" and 300 <= response.status < 400:
            raise TypeError(
                f"fetch() got a redirect from {request.url} with redirect='error'"
            ) from None
        return response
    except urllib.error.URLError as exc:
        raise OSError(f"fetch({request.url!r}) failed: {exc.reason}") from exc


async def fetch(resource: Request | str, **options: Any) -> Response:
    """Send a request and resolve to its response."""
    known = {k: options[k] for k in ("method", "headers", "body", "redirect") if k in options}
    request = Request(resource, **known)
    return await asyncio.to_thread(_send, request)
