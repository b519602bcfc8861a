"""The request object every handler kind sees.

The connection layer fills it with raw bytes straight from the parser; the
decoded views (`method`, `path`, `headers`, ...) are computed on first access
so the native fast path, which only needs bytes, never pays for them.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["Headers", "Request"]


class Headers:
    """Case-insensitive, multi-valued request headers, in arrival order.

    `get()` returns the first value of a name, `getall()` every value, and
    iteration yields `(name, value)` pairs with repeated names kept.
    """

    __slots__ = ("_raw", "_decoded", "_index")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw  # decoded only when asked: many handlers never look
        self._decoded: list[tuple[str, str]] | None = None
        self._index: dict[str, list[str]] | None = None

    @property
    def _items(self) -> list[tuple[str, str]]:
        if self._decoded is None:
            self._decoded = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self._raw]
        return self._decoded

    def _lookup(self) -> dict[str, list[str]]:
        if self._index is None:
            index: dict[str, list[str]] = {}
            for name, value in self._items:
                index.setdefault(name.lower(), []).append(value)
            self._index = index
        return self._index

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._lookup().get(name.lower())
        return values[0] if values else default

    def getall(self, name: str) -> list[str]:
        return list(self._lookup().get(name.lower(), ()))

    def __getitem__(self, name: str) -> str:
        values = self._lookup().get(name.lower())
        if not values:
            raise KeyError(name)
        return values[0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._raw)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def keys(self) -> list[str]:
        return [name for name, _ in self._items]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Request:
    """One HTTP request, as parsed off the wire.

    Raw fields (bytes, exactly as received): `raw_method`, `raw_target`,
    `raw_headers` (list of `(name, value)`), `body`. Decoded views:
    `method`, `target`, `path`, `query`, `headers`, `client`, `http_version`.

    `normalized_path` (bytes, no query) is the path routing matched and the
    proxy maps: unreserved escapes decoded, `.`/`..` resolved, slashes merged
    (`flexilib.http.target`). `raw_target` and `path` stay as the client sent them.
    """

    __slots__ = (
        "raw_method",
        "raw_target",
        "raw_headers",
        "body",
        "client",
        "http_version",
        "scheme",
        "route_prefix",
        "request_id",
        "normalized_path",
        "_headers",
    )

    def __init__(
        self,
        raw_method: bytes,
        raw_target: bytes,
        raw_headers: list[tuple[bytes, bytes]],
        body: bytes = b"",
        client: tuple[str, int] = ("", 0),
        http_version: str = "1.1",
        scheme: str = "http",
        normalized_path: bytes | None = None,
    ) -> None:
        self.raw_method = raw_method
        self.raw_target = raw_target
        self.raw_headers = raw_headers
        self.body = body
        self.client = client
        self.http_version = http_version
        self.scheme = scheme
        #: the path prefix of the rule that routed it (what a proxy replaces, a CGI's SCRIPT_NAME)
        self.route_prefix = b""
        #: an id a handler kind gives the request for its log lines (Lambda's aws_request_id);
        #: kept here so a timeout, answered on another thread, can name the same request
        self.request_id: str | None = None
        #: set by the HTTP protocol; a request made elsewhere routes by its path as given
        self.normalized_path = (
            raw_target.partition(b"?")[0] if normalized_path is None else normalized_path
        )
        self._headers: Headers | None = None

    @property
    def method(self) -> str:
        return self.raw_method.decode("ascii")

    @property
    def target(self) -> str:
        return self.raw_target.decode("latin-1")

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        """The query string without the leading `?` ('' when absent)."""
        return self.target.partition("?")[2]

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self.raw_headers)
        return self._headers

    def header(self, name: bytes) -> bytes | None:
        """First raw value of header `name` (lower-case bytes), without decoding all headers."""
        for n, v in self.raw_headers:
            if len(n) == len(name) and n.lower() == name:
                return v
        return None

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"
