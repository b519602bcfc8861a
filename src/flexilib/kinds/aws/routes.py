"""API Gateway routes: `GET /users/{id}`, `ANY /{proxy+}`, and which one a request takes.

A route is a method (or `ANY`) and a path template whose segments are
literals, `{name}` (one segment) or a last `{name+}` (one or more segments,
greedy). The matching follows API Gateway's documented precedence ("Working
with routes for HTTP APIs", "Set up a proxy integration with a proxy
resource"): the most specific path wins, compared segment by segment from the
left (a literal before a `{variable}` before a greedy `{proxy+}`), then a
route with the request's method before `ANY`, and `$default` last.

Path parameter values are percent-decoded, as both API types deliver them;
a greedy parameter is the rest of the path without its leading slash.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

__all__ = ["DEFAULT_ROUTE", "Route", "RouteMatch", "RouteTable", "parse_route"]

DEFAULT_ROUTE = "$default"
_LITERAL, _VARIABLE, _GREEDY, _CATCH_ALL = 0, 1, 2, 3
_VARIABLE_SEGMENT = re.compile(r"\{([A-Za-z0-9._-]+)(\+?)\}")
_METHODS = frozenset({"ANY", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Route:
    """One route; `target` and `fmt` say what it leads to (a SAM function and its payload)."""

    method: str  # upper-case, or ANY
    path: str  # the template as API Gateway shows it in `resource`, or `$default`
    segments: tuple[tuple[int, str], ...]
    target: Any = field(default=None, compare=False)
    fmt: str = "2.0"

    @property
    def key(self) -> str:
        """The HTTP API route key: `GET /users/{id}`, or `$default`."""
        return self.path if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"

    def precedence(self) -> tuple:
        kinds = tuple(kind for kind, _ in self.segments)
        return (kinds, self.method == "ANY")

    def bind(self, parts: list[str]) -> dict[str, str] | None:
        """The path parameters when `parts` (the request path's segments) match; else None."""
        params: dict[str, str] = {}
        segments = self.segments
        if segments and segments[0][0] == _CATCH_ALL:
            return params
        count = len(segments)
        if count and segments[-1][0] == _GREEDY:
            if len(parts) < count or not parts[count - 1]:
                return None
        elif len(parts) != count:
            return None
        for index, (kind, text) in enumerate(segments):
            part = parts[index]
            if kind == _LITERAL:
                if part != text:
                    return None
            elif kind == _VARIABLE:
                if not part:
                    return None
                params[text] = unquote(part)
            else:
                params[text] = unquote("/".join(parts[index:]))
        return params


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    params: dict[str, str]


def parse_route(text: str, *, target: Any = None, fmt: str = "2.0") -> Route:
    """`GET /users/{id}`, `ANY /{proxy+}`, `/path` (ANY) or `$default`; ValueError when bad.

    `METHOD:/path` is accepted too, for proxy.ini options, which cannot hold a space.
    """
    text = text.strip()
    if text == DEFAULT_ROUTE:
        return Route("ANY", DEFAULT_ROUTE, ((_CATCH_ALL, ""),), target, fmt)
    method, sep, path = text.replace(":/", " /", 1).partition(" ")
    if not sep:
        method, path = "ANY", text
    method, path = method.strip().upper(), path.strip()
    if method not in _METHODS:
        raise ValueError(f"route {text!r}: unknown method {method!r}")
    if not path.startswith("/"):
        raise ValueError(f"route {text!r}: the path must start with '/'")
    segments: list[tuple[int, str]] = []
    names: set[str] = set()
    parts = path.split("/")[1:] if path != "/" else []
    for index, part in enumerate(parts):
        variable = _VARIABLE_SEGMENT.fullmatch(part)
        if variable is None:
            if "{" in part or "}" in part:
                raise ValueError(f"route {text!r}: bad path segment {part!r}")
            segments.append((_LITERAL, part))
            continue
        name, greedy = variable.groups()
        if name in names:
            raise ValueError(f"route {text!r}: path parameter {name!r} appears twice")
        names.add(name)
        if greedy and index != len(parts) - 1:
            raise ValueError(f"route {text!r}: a greedy {{{name}+}} must be the last segment")
        segments.append((_GREEDY if greedy else _VARIABLE, name))
    return Route(method, path, tuple(segments), target, fmt)


class RouteTable:
    """Routes in API Gateway's precedence; `match()` gives the one a request takes."""

    __slots__ = ("routes",)

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = sorted(routes, key=Route.precedence)
        seen: set[tuple[str, str]] = set()
        for route in self.routes:
            identity = (route.method, route.path)
            if identity in seen:
                raise ValueError(f"route {route.key!r} is defined twice")
            seen.add(identity)

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The route for `method` and `path` (percent-encoded, without the query), or None."""
        parts = path.split("/")[1:] if path != "/" else []
        for route in self.routes:
            if route.method != "ANY" and route.method != method:
                continue
            params = route.bind(parts)
            if params is not None:
                return RouteMatch(route, params)
        return None
