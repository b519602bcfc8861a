"""The `js` module of Python Workers, for code written against the JavaScript globals.

On Cloudflare, `from js import console, Response, Headers, fetch` reaches the
JS runtime through Pyodide. Older examples build responses the JS way:
`Response.new("Hello")`, `Response.new(body, status=404, headers=...)`, or
with an init object `Response.new(body, {"status": 201})`. The names here
behave that way and produce the SDK's own objects, so a worker written
either way runs. `console.log/info/debug` go to stdout and `console.warn/
error` to stderr, as `wrangler dev` shows them. `JSON.stringify/parse`,
`Object.fromEntries` and `URL.new` are given for the small uses examples
make of them. Anything else in `js` does not exist here (AttributeError,
rather than a silent stand-in).
"""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import urlsplit

from flexilib.kinds.cloudflare.sdk import outgoing
from flexilib.kinds.cloudflare.sdk.formdata import Blob, File, FormData
from flexilib.kinds.cloudflare.sdk.request import Request as _Request
from flexilib.kinds.cloudflare.sdk.response import Response as _Response

__all__ = [
    "JSON",
    "URL",
    "Blob",
    "File",
    "FormData",
    "Headers",
    "Object",
    "Request",
    "Response",
    "console",
    "fetch",
]


def _text(args: tuple) -> str:
    return " ".join(a if isinstance(a, str) else repr(a) for a in args)


class console:  # noqa: N801 - the JS global's name
    @staticmethod
    def log(*args: Any) -> None:
        print(_text(args), flush=True)

    info = debug = log

    @staticmethod
    def error(*args: Any) -> None:
        print(_text(args), file=sys.stderr, flush=True)

    warn = error


def _init(init: Any, kwargs: dict) -> dict:
    merged = dict(init or {})
    merged.update(kwargs)
    return merged


class Response:
    """`Response.new(body, init)` and the static `Response.json` / `Response.redirect`."""

    @staticmethod
    def new(body: Any = None, init: Any = None, **kwargs: Any) -> _Response:
        options = _init(init, kwargs)
        headers = options.get("headers")
        if isinstance(headers, Headers):
            headers = headers.pairs
        return _Response(
            body,
            options.get("status"),
            options.get("statusText", options.get("status_text", "")),
            headers,
        )

    json = staticmethod(_Response.json)
    redirect = staticmethod(_Response.redirect)


class Request:
    @staticmethod
    def new(url: Any, init: Any = None, **kwargs: Any) -> _Request:
        options = _init(init, kwargs)
        headers = options.get("headers")
        if isinstance(headers, Headers):
            headers = headers.pairs
        return _Request(
            url, method=options.get("method"), headers=headers, body=options.get("body")
        )


class Headers:
    """`Headers.new(dict or pairs)`: usable as `headers=` of Response.new."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    @classmethod
    def new(cls, init: Any = None) -> Headers:
        if init is None:
            return cls([])
        items = init.items() if hasattr(init, "items") else init
        return cls([(str(k), str(v)) for k, v in items])

    def get(self, name: str) -> str | None:
        values = [v for k, v in self.pairs if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    def set(self, name: str, value: str) -> None:
        self.pairs = [(k, v) for k, v in self.pairs if k.lower() != name.lower()]
        self.pairs.append((name, value))

    def append(self, name: str, value: str) -> None:
        self.pairs.append((name, value))


class JSON:  # noqa: N801
    @staticmethod
    def stringify(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))

    @staticmethod
    def parse(text: str) -> Any:
        return json.loads(text)


class Object:  # noqa: N801
    @staticmethod
    def fromEntries(entries: Any) -> dict:  # noqa: N802 - the JS name
        return dict(entries.items() if hasattr(entries, "items") else entries)


class URL:
    """`URL.new(text)`: the parts a worker reads (`pathname`, `search`, `hostname`, ...)."""

    def __init__(self, text: str) -> None:
        parts = urlsplit(text)
        self.href = text
        self.protocol = parts.scheme + ":"
        self.host = parts.netloc
        self.hostname = parts.hostname or ""
        self.port = str(parts.port or "")
        self.pathname = parts.path or "/"
        self.search = f"?{parts.query}" if parts.query else ""
        self.hash = f"#{parts.fragment}" if parts.fragment else ""

    @classmethod
    def new(cls, text: str) -> URL:
        return cls(str(text))

    def toString(self) -> str:  # noqa: N802
        return self.href


fetch = outgoing.fetch
