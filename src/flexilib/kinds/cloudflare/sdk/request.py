"""`workers.Request`: the SDK's Request class, in plain CPython.

What a worker's `fetch(request)` receives on Cloudflare, and what it may
build itself to pass to `fetch()`:

- `.method`: an `http.HTTPMethod` (a str enum, so `== "POST"` works); a
  non-standard method stays a plain str. (Python 3.10 has no HTTPMethod: str.)
- `.url`: absolute, built from the scheme, the `Host` header (or the
  server's address when the client sent none) and the request target.
- `.headers`: a new `http.client.HTTPMessage` per access, lower-case names,
  repeated names joined by ", " except `set-cookie` (`get`, `get_all`, `in`,
  `items()`, iteration over names).
- body readers `text()`, `json()`, `bytes()`, `buffer()` (and `arrayBuffer()`,
  the JS spelling older `on_fetch` code calls on the raw JS request), each
  usable once; `.body` is the stream or None; `form_data()` (JS: `formData()`)
  parses a urlencoded or multipart body into a `FormData`.

The incoming request also carries `cf-connecting-ip` (the client address),
the header Cloudflare adds for a worker. It is set from the connection and
the client's own is dropped, as Cloudflare does: a client could otherwise
claim any address.
"""

from __future__ import annotations

from http.client import HTTPMessage

from flexilib.kinds.cloudflare.sdk.body import ArrayBuffer, Body
from flexilib.kinds.cloudflare.sdk.formdata import FormData, parse_form
from flexilib.kinds.cloudflare.sdk.headers import HeadersInit, header_pairs, to_message
from flexilib.kinds.cloudflare.sdk.url import normalize_url
from flexilib.request import Request as FlexiRequest

try:
    from http import HTTPMethod
except ImportError:  # Python 3.10
    HTTPMethod = None

__all__ = ["Request"]

_NORMALISED_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"})
_BODYLESS_METHODS = frozenset({"GET", "HEAD"})


def _method(name: str) -> str:
    # the Fetch API upper-cases only these six; others keep their case
    upper = name.upper()
    return upper if upper in _NORMALISED_METHODS else name


def _body(body: object) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"Unsupported type for a Request body: {type(body).__name__}")


class Request(Body):
    """One HTTP request, as a worker sees it."""

    def __init__(
        self,
        input: Request | str,
        *,
        method: str | None = None,
        headers: HeadersInit | None = None,
        body: str | bytes | None = None,
        redirect: str | None = None,
        cf: dict | None = None,
    ) -> None:
        if isinstance(input, Request):
            base_method, url, pairs = input._method, input._url, list(input._pairs)
            data, base_redirect, base_cf = input._body, input._redirect, input._cf
        else:
            base_method, url, pairs = "GET", normalize_url(input), []
            data, base_redirect, base_cf = None, "follow", None
        self._method = _method(str(method)) if method is not None else base_method
        self._url = url
        self._pairs = header_pairs(headers) if headers is not None else pairs
        if body is not None:
            data = _body(body)
            if isinstance(body, str) and all(name != "content-type" for name, _ in self._pairs):
                self._pairs = [*self._pairs, ("content-type", "text/plain;charset=UTF-8")]
        if data is not None and self._method in _BODYLESS_METHODS:
            raise TypeError("Request with a GET or HEAD method cannot have a body.")
        if redirect is not None and redirect not in ("follow", "manual", "error"):
            raise TypeError(f"Invalid redirect mode {redirect!r}: use follow, manual or error")
        self._redirect = redirect or base_redirect
        self._cf = cf if cf is not None else base_cf
        self._init_body(data)

    @classmethod
    def from_flexilib(cls, request: FlexiRequest, host: str) -> Request:
        """The worker's view of a request flexilib parsed; `host` when it has no Host header."""
        self = cls.__new__(cls)
        self._method = _method(request.method)
        self._url = _absolute_url(request, host)
        # the client's own `cf-connecting-ip` is dropped: only the connection says who it is
        pairs = [
            (lower, value.strip())
            for name, value in request.headers.items()
            if (lower := name.lower()) != "cf-connecting-ip"
        ]
        client = request.client
        if client and client[0]:
            pairs.append(("cf-connecting-ip", client[0]))
        self._pairs = pairs
        self._redirect = "follow"
        self._cf = None
        self._init_body(request.body or None)
        return self

    @property
    def method(self) -> str:
        if HTTPMethod is not None and self._method in HTTPMethod.__members__:
            return HTTPMethod[self._method]
        return self._method

    @property
    def url(self) -> str:
        return self._url

    @property
    def headers(self) -> HTTPMessage:
        return to_message(self._pairs)

    @property
    def redirect(self) -> str:
        return self._redirect

    @property
    def cf(self) -> dict | None:
        """The `cf` options given to the constructor; None for incoming requests here."""
        return self._cf

    async def arrayBuffer(self) -> ArrayBuffer:  # the JS name
        return await self.buffer()

    async def form_data(self) -> FormData:
        """The body as a form (urlencoded or multipart); TypeError for another type."""
        return parse_form(self._consume(), self.headers.get("content-type"))

    formData = form_data  # the JS name

    def clone(self) -> Request:
        if self._used:
            raise OSError("Body already used")
        return Request(self)

    def __repr__(self) -> str:
        return f"Request(method={self._method!r}, url={self._url!r})"


def _absolute_url(request: FlexiRequest, host: str) -> str:
    target = request.target
    if "://" in target.partition("?")[0]:  # absolute-form target (a proxy request)
        try:
            return normalize_url(target)
        except TypeError:
            target = "/"
    if not target.startswith("/"):  # asterisk-form (OPTIONS *)
        target = "/"
    authority = request.headers.get("host")
    if authority:
        try:
            return normalize_url(f"{request.scheme}://{authority}{target}")
        except TypeError:  # a Host header no URL parser accepts: use the server's
            pass
    return normalize_url(f"{request.scheme}://{host}{target}")
