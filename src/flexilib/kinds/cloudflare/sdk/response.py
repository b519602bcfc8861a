"""`workers.Response`: the SDK's Response class, in plain CPython.

Signatures and checks follow the real SDK (workerd's `workers` module, built
on Pyodide's `FetchResponse`) and the JS `Response` under it:

- `Response(body=None, status=None, status_text="", headers=None)`; `body` is
  `str`, `bytes` (also `bytearray`/`memoryview`, the Python side of the JS
  buffer types), another body's `.body` stream, a `FormData` (sent as
  multipart/form-data), or None. Anything else is
  `TypeError("Unsupported type in Response: <type>")`.
- `status` defaults to 200 and must be 200..599 (`ValueError`, the SDK's
  mapping of the JS RangeError); 204, 205 and 304 take no body (`TypeError`).
- `status_text` defaults to the standard phrase, as workerd fills it in.
- A `str` body gets `content-type: text/plain;charset=UTF-8` unless one is
  given, as the JS constructor does; bytes get none.
- `Response.json(data, status=, status_text=, headers=)` (alias
  `Response.from_json`) serialises with `json.dumps` and sets
  `content-type: application/json` unless given; on an instance, `json()`
  parses the body instead, exactly as the SDK overloads the name.
- `Response.redirect(url, status=302)`: 301, 302, 303, 307 or 308
  (`ValueError` otherwise), an absolute URL (`TypeError` otherwise), empty
  body and a `location` header.
- `.headers` is a new dict on every access with lower-case names (Pyodide's
  `FetchResponse.headers`); the full list, repeated `set-cookie` included, is
  what goes on the wire.
"""

from __future__ import annotations

import json as _json
import operator
from http import HTTPStatus
from typing import Any

from flexilib.http.status import phrase
from flexilib.kinds.cloudflare.sdk.body import Body, ReadableStream
from flexilib.kinds.cloudflare.sdk.formdata import FormData
from flexilib.kinds.cloudflare.sdk.headers import HeadersInit, combined, header_pairs
from flexilib.kinds.cloudflare.sdk.url import normalize_url
from flexilib.response import Response as FlexiResponse

__all__ = ["Response"]

_NULL_BODY_STATUSES = frozenset({101, 204, 205, 304})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_TEXT_PLAIN = "text/plain;charset=UTF-8"


def _body_bytes(body: object) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, ReadableStream):
        return body._read_all()
    raise TypeError(f"Unsupported type in Response: {type(body).__name__}")


def _has(pairs: list[tuple[str, str]], name: str) -> bool:
    return any(n == name for n, _ in pairs)


class Response(Body):
    """The response a worker returns (and what `fetch()` resolves to)."""

    def __init__(
        self,
        body: str | bytes | ReadableStream | FormData | None = None,
        status: int | None = None,
        status_text: str = "",
        headers: HeadersInit | None = None,
        web_socket: object = None,
    ) -> None:
        if web_socket is not None:
            raise NotImplementedError("flexilib's worker emulation does not serve WebSockets")
        code = operator.index(status) if status else 200
        if not 200 <= code <= 599:
            raise ValueError(
                "Responses may only be constructed with status codes in the range 200 to 599, "
                f"inclusive (got {code})."
            )
        if "\r" in status_text or "\n" in status_text:
            raise TypeError("Invalid statusText")
        form_type = None
        if isinstance(body, FormData):  # sent as multipart/form-data, as the Fetch API does
            body, form_type = body.encode()
        data = _body_bytes(body)
        if data is not None and code in _NULL_BODY_STATUSES:
            raise TypeError(f"Response with null body status ({code}) cannot have body")
        pairs = header_pairs(headers)
        if isinstance(body, str) and not _has(pairs, "content-type"):
            pairs.append(("content-type", _TEXT_PLAIN))
        if form_type is not None and not _has(pairs, "content-type"):
            pairs.append(("content-type", form_type))
        self._fill(code, status_text or phrase(code), pairs, data, "", False)

    def _fill(
        self,
        status: int,
        status_text: str,
        pairs: list[tuple[str, str]],
        data: bytes | None,
        url: str,
        redirected: bool,
    ) -> None:
        self._status = status
        self._status_text = status_text
        self._pairs = pairs
        self._url = url
        self._redirected = redirected
        self._init_body(data)

    @classmethod
    def _received(
        cls,
        status: int,
        status_text: str,
        pairs: list[tuple[str, str]],
        data: bytes,
        url: str,
        redirected: bool,
    ) -> Response:
        """A response that came off the network (`fetch`): no constructor checks apply."""
        response = cls.__new__(cls)
        response._fill(status, status_text, pairs, data, url, redirected)
        return response

    # -- the Fetch API's read-only attributes -----------------------------------------------

    @property
    def status(self) -> int:
        return self._status

    @property
    def status_text(self) -> str:
        return self._status_text

    @property
    def ok(self) -> bool:
        return 200 <= self._status <= 299

    @property
    def headers(self) -> dict[str, str]:
        return dict(combined(self._pairs))

    @property
    def url(self) -> str:
        return self._url

    @property
    def redirected(self) -> bool:
        return self._redirected

    # -- instance methods -----------------------------------------------------------------

    def clone(self) -> Response:
        if self._used:
            raise OSError("Body already used")
        return Response._received(
            self._status,
            self._status_text,
            list(self._pairs),
            self._body,
            self._url,
            self._redirected,
        )

    def replace_body(self, body: str | bytes | ReadableStream | None) -> Response:
        """A copy with the same status and headers and a new body (an SDK addition)."""
        copy = self.clone()
        copy._init_body(_body_bytes(body))
        return copy

    def json(self, *args: Any, **kwargs: Any) -> Any:
        """`await response.json()` parses the body; `Response.json(data, ...)` builds one.

        The SDK overloads the name the same way, so both spellings in worker
        code behave as they do on Cloudflare.
        """
        if isinstance(self, Response):
            return Body.json(self, **kwargs)
        return Response.from_json(self, *args, **kwargs)

    @staticmethod
    def from_json(
        data: Any,
        status: int = HTTPStatus.OK,
        status_text: str = "",
        headers: HeadersInit | None = None,
    ) -> Response:
        pairs = header_pairs(headers)
        if not _has(pairs, "content-type"):
            pairs.append(("content-type", "application/json"))
        return Response(_json.dumps(data).encode(), status, status_text, pairs)

    @staticmethod
    def redirect(url: str, status: int = HTTPStatus.FOUND) -> Response:
        code = operator.index(status)
        if code not in _REDIRECT_STATUSES:
            raise ValueError(f"Invalid redirect status code {code}: use 301, 302, 303, 307 or 308")
        location = normalize_url(url)
        return Response(None, code, headers=[("location", location)])

    # -- to the server --------------------------------------------------------------------

    def to_flexilib(self) -> FlexiResponse:
        """The response as flexilib's writer takes it: status, reason, header list, bytes."""
        return FlexiResponse(
            self._body or b"",
            self._status,
            combined(self._pairs),
            reason=self._status_text or None,
        )

    def __repr__(self) -> str:
        parts = [f"status={self._status}"]
        if self._status_text:
            parts.append(f"status_text={self._status_text!r}")
        content_type = self.headers.get("content-type")
        if content_type:
            parts.append(f"content_type={content_type!r}")
        if self._url:
            parts.append(f"url={self._url!r}")
        return f"Response({', '.join(parts)})"
