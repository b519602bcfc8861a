"""Events built once per distinct request and copied (kinds/aws/events.py, gateway_event).

A repeat must get exactly the event a fresh build gives, with its own ids, time and body,
and nothing a function changes in its event may reach the next one.
"""

from __future__ import annotations

import copy

import pytest

from flexilib.kinds.aws import events
from flexilib.kinds.aws.events import (
    ACCOUNT_ID,
    API_ID,
    MAX_TEMPLATES,
    build_event_v1,
    build_event_v2,
    gateway_event,
)
from flexilib.kinds.aws.routes import RouteTable, parse_route
from flexilib.request import Request

HEADERS = [
    (b"Host", b"api.example.com:8080"),
    (b"User-Agent", b"probe/1"),
    (b"Content-Type", b"text/plain"),
    (b"Header2", b"value1"),
    (b"Header2", b"value2"),
    (b"Cookie", b"cookie1=a; cookie2=b"),
]
ROUTES = RouteTable([parse_route("GET:/users/{id}")])


def request(target: bytes = b"/users/7?a=1&a=2&b=%20x", body: bytes = b"") -> Request:
    return Request(b"GET", target, list(HEADERS), body, ("10.0.0.1", 5000), "1.1", "http")


def fresh(req: Request, fmt: str, match) -> dict:
    build = build_event_v1 if fmt == "1.0" else build_event_v2
    return build(req, api_id=API_ID, account_id=ACCOUNT_ID, request_id="", now_ms=0, match=match)


def without_stamps(event: dict) -> dict:
    event = copy.deepcopy(event)
    context = event["requestContext"]
    for key in ("requestId", "extendedRequestId", "time", "timeEpoch"):
        context.pop(key, None)
    for key in ("requestTime", "requestTimeEpoch"):
        context.pop(key, None)
    return event


@pytest.mark.parametrize("fmt", ["2.0", "1.0"])
@pytest.mark.parametrize("routed", [False, True])
def test_a_repeat_gets_the_event_a_fresh_build_gives(fmt, routed):
    events._templates.clear()
    match = ROUTES.match("GET", "/users/7") if routed else None
    for body in (b"", b"Hello from Lambda", b"", b"\xff\xfe binary"):
        req = request(body=body)
        got = gateway_event(req, fmt, match)
        want = fresh(req, fmt, match)
        assert list(got) == list(want)  # the same keys, in the same order
        assert without_stamps(got) == without_stamps(want)
    assert len(events._templates) == 1  # one template served the four bodies


@pytest.mark.parametrize("fmt", ["2.0", "1.0"])
def test_each_repeat_is_its_own_copy_with_its_own_ids(fmt):
    events._templates.clear()
    first = gateway_event(request(), fmt)
    untouched = copy.deepcopy(first)

    def scribble(value):  # change every dict and list the function could reach
        if isinstance(value, dict):
            for inner in list(value.values()):
                scribble(inner)
            value["scribbled"] = True
        elif isinstance(value, list):
            for inner in value:
                scribble(inner)
            value.append("scribbled")

    scribble(first)
    second = gateway_event(request(), fmt)
    assert without_stamps(second) == without_stamps(untouched)
    assert second["requestContext"]["requestId"] != untouched["requestContext"]["requestId"]


def test_the_template_table_is_bounded():
    events._templates.clear()
    for n in range(MAX_TEMPLATES + 5):
        gateway_event(request(b"/n/%d" % n), "2.0")
    assert len(events._templates) <= MAX_TEMPLATES
