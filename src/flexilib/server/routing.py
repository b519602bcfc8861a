"""Request -> Route: the ordered prefix match, kept tiny because every request runs it.

Paths are matched in their normal form (`Request.normalized_path`, made by
`flexilib.http.target`), so no spelling of a path gets around a rule. A
`Host` rule compares case-insensitively (host names are); other header
values compare as sent.
"""

from __future__ import annotations

from flexilib.config import Rule
from flexilib.request import Request
from flexilib.runtime.slot import HandlerSlot
from flexilib.stats import RouteStats

__all__ = ["Route", "Router"]


class Route:
    """A rule bound to the live slot of its handler."""

    __slots__ = ("key", "spec", "slot", "stats", "path_prefix", "header_name", "value_prefix")

    def __init__(self, rule: Rule, slot: HandlerSlot, stats: RouteStats) -> None:
        self.key = rule.key
        self.spec = rule.spec
        self.stats = stats  # what it served since the last report to the master
        self.slot = slot
        self.path_prefix = rule.path_prefix
        self.header_name = rule.header_name
        # host names are case-insensitive: the value is lowered here and in `match`
        host = rule.header_name == b"host"
        self.value_prefix = rule.value_prefix.lower() if host else rule.value_prefix


class Router:
    """First match wins, in file order; a header rule needs both its header and its path."""

    __slots__ = ("routes",)

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    def match(self, request: Request) -> Route | None:
        path = request.normalized_path
        for route in self.routes:
            if path.startswith(route.path_prefix):
                name = route.header_name
                if name is None:
                    return route
                value = request.header(name)
                if value is None:
                    continue
                if name == b"host":
                    value = value.lower()
                if value.startswith(route.value_prefix):
                    return route
        return None
