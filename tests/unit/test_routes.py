"""API Gateway route templates and their precedence (kinds/aws/routes.py), and the events."""

from __future__ import annotations

import pytest

from flexilib.kinds.aws.events import gateway_event
from flexilib.kinds.aws.routes import RouteTable, parse_route
from flexilib.request import Request

TABLE = RouteTable(
    parse_route(text)
    for text in [
        "GET /users/{id}",
        "GET /users/me",
        "ANY /users/{id}",
        "POST /users",
        "ANY /{proxy+}",
        "GET /files/{path+}",
        "GET /",
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "key", "params"),
    [
        ("GET", "/users/me", "GET /users/me", {}),  # exact before a template
        ("GET", "/users/42", "GET /users/{id}", {"id": "42"}),
        ("PUT", "/users/42", "ANY /users/{id}", {"id": "42"}),  # method before ANY
        ("POST", "/users", "POST /users", {}),
        ("GET", "/users", "ANY /{proxy+}", {"proxy": "users"}),  # greedy last
        ("GET", "/files/a/b%20c.txt", "GET /files/{path+}", {"path": "a/b c.txt"}),
        ("GET", "/a/b/c", "ANY /{proxy+}", {"proxy": "a/b/c"}),
        ("GET", "/", "GET /", {}),
    ],
)
def test_precedence(method, path, key, params):
    match = TABLE.match(method, path)
    assert match is not None
    assert (match.route.key, match.params) == (key, params)


def test_no_match_and_empty_segments():
    table = RouteTable([parse_route("GET /users/{id}"), parse_route("GET /files/{p+}")])
    assert table.match("GET", "/users/") is None
    assert table.match("GET", "/users/1/x") is None
    assert table.match("GET", "/files/") is None
    assert table.match("POST", "/users/1") is None


def test_default_route_catches_everything_last():
    table = RouteTable([parse_route("$default"), parse_route("GET /a")])
    assert table.match("GET", "/a").route.key == "GET /a"
    assert table.match("DELETE", "/x/y").route.key == "$default"


@pytest.mark.parametrize(
    "text",
    ["FETCH /a", "GET a", "GET /{p+}/x", "GET /{a}/{a}", "GET /a{b}"],
)
def test_bad_routes_are_refused(text):
    with pytest.raises(ValueError):
        parse_route(text)


def test_duplicate_routes_are_refused():
    with pytest.raises(ValueError, match="twice"):
        RouteTable([parse_route("GET /a"), parse_route("GET:/a")])


def _request(target: bytes) -> Request:
    return Request(b"GET", target, [(b"Host", b"example.test")], client=("127.0.0.1", 1))


def test_events_carry_the_matched_route():
    match = TABLE.match("GET", "/users/42")
    v2 = gateway_event(_request(b"/users/42?x=1"), "2.0", match)
    assert v2["routeKey"] == v2["requestContext"]["routeKey"] == "GET /users/{id}"
    assert v2["pathParameters"] == {"id": "42"}
    v1 = gateway_event(_request(b"/users/42"), "1.0", match)
    assert v1["resource"] == v1["requestContext"]["resourcePath"] == "/users/{id}"
    assert v1["pathParameters"] == {"id": "42"}
    exact = gateway_event(_request(b"/users"), "1.0", TABLE.match("POST", "/users"))
    assert exact["pathParameters"] is None  # REST APIs send null, not {}
    assert "pathParameters" not in gateway_event(_request(b"/users"), "2.0", None)
