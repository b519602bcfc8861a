"""The AWS Lambda pieces that need no server: events, response mapping, context, environment.

Event shapes are judged against the examples in the AWS documentation
(tests/data/aws, see its README) and by the libraries functions use to read
them (AWS Lambda Powertools, Mangum); the context against the official
runtime client's own context class.
"""

from __future__ import annotations

import base64
import decimal
import json
import os
import subprocess
import threading
import time

import pytest
from conftest import REPO
from fastapi import FastAPI
from fastapi import Request as FastAPIRequest  # module level: FastAPI resolves annotations here
from fastapi.responses import JSONResponse
from fastapi.responses import Response as FastAPIResponse
from mangum import Mangum

from flexilib.kinds.aws import events, responses
from flexilib.kinds.aws.context import LambdaContext, function_arn, new_context
from flexilib.kinds.aws.environment import function_environment, lambda_environment
from flexilib.request import Request

DATA = REPO / "tests" / "data" / "aws"
NOW_MS = 1583348638390  # the documented example's timeEpoch: 04/Mar/2020:19:03:58 UTC
# (the example's "time" says 12/Mar: the published example disagrees with itself)


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def make_request(
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> Request:
    raw = [(n.encode(), v.encode("utf-8")) for n, v in (headers or [("Host", "127.0.0.1:8080")])]
    return Request(method.encode(), target.encode(), raw, body, ("127.0.0.1", 50000), "1.1")


def v2(request: Request, **kw) -> dict:
    args = {"api_id": "local", "account_id": "123456789012", "request_id": "rid", "now_ms": NOW_MS}
    return events.build_event_v2(request, **(args | kw))


def v1(request: Request, **kw) -> dict:
    args = {"api_id": "local", "account_id": "123456789012", "request_id": "rid", "now_ms": NOW_MS}
    return events.build_event_v1(request, **(args | kw))


FULL = dict(
    method="POST",
    target="/my/path?parameter1=value1&parameter1=value2&parameter2=value",
    headers=[
        ("Host", "api.example.com:8080"),
        ("User-Agent", "agent"),
        ("Content-Type", "text/plain"),
        ("Header2", "value1"),
        ("Header2", "value2"),
        ("Cookie", "cookie1=a; cookie2=b"),
    ],
    body=b"Hello from Lambda",
)

# --- shape comparison against the documented examples ------------------------------------

# Keys whose values map request data (names are data, not schema): compare value types only.
DATA_MAPS = {
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
}

V2_OPTIONAL = {
    "event.cookies": "only when the request carries cookies",
    "event.queryStringParameters": "only with a query string",
    "event.body": "only with a body",
    "event.pathParameters": "only on routes with path variables; $default has none",
    "event.stageVariables": "only when the stage defines variables",
    "event.requestContext.authentication": "only with mutual TLS",
    "event.requestContext.authorizer": "only with an authorizer",
}
V1_OPTIONAL = {
    "event.version": "HTTP APIs add it to 1.0 events; REST API events have none",
    "event.requestContext.authorizer": "only with an authorizer",
    "event.requestContext.identity.clientCert": "only with mutual TLS",
}
# In 1.0 events these are null when the request has none (the examples show both forms).
V1_NULLABLE = {
    "event.queryStringParameters",
    "event.multiValueQueryStringParameters",
    "event.pathParameters",
    "event.stageVariables",
    "event.body",
}


def shape_errors(ours: dict, examples: list[dict], optional: dict, nullable: set) -> list[str]:
    """Differences in keys and value types between `ours` and each documented example.

    A key of ours must appear in at least one example; each example's keys must
    appear in ours unless listed as optional; where both have a key the value
    types must match, a null in the example standing for "any type or null".
    """
    errors: list[str] = []

    def walk(our: dict, exs: list[dict], path: str) -> None:
        allowed = set().union(*(ex.keys() for ex in exs))
        for key in our:
            if key not in allowed:
                errors.append(f"{path}.{key}: not in any documented example")
        for ex in exs:
            for key in ex:
                if key not in our and f"{path}.{key}" not in optional:
                    errors.append(f"{path}.{key}: missing")
        for key, value in our.items():
            where = f"{path}.{key}"
            samples = [ex[key] for ex in exs if ex.get(key) is not None]
            if not samples:
                continue
            if value is None:
                if where not in nullable:
                    errors.append(f"{where}: null, documented as {type(samples[0]).__name__}")
                continue
            if key in DATA_MAPS:
                for sample in samples:
                    want = {type(v) for v in sample.values()}
                    got = {type(v) for v in value.values()}
                    if not isinstance(value, dict) or not got <= want:
                        errors.append(f"{where}: value types {got} where documented {want}")
                    elif list in want:
                        inner = {type(x) for v in value.values() for x in v}
                        if not inner <= {str}:
                            errors.append(f"{where}: list items of types {inner}")
                continue
            for sample in samples:
                if type(value) is not type(sample):
                    errors.append(
                        f"{where}: {type(value).__name__}, documented {type(sample).__name__}"
                    )
                    break
            else:
                if isinstance(value, dict):
                    walk(value, [s for s in samples if isinstance(s, dict)], where)
                elif isinstance(value, list):
                    want = {type(x) for s in samples for x in s}
                    if not {type(x) for x in value} <= want:
                        errors.append(f"{where}: list items differ in type from {want}")

    walk(ours, examples, "event")
    return errors


V2_EXAMPLES = [load("http-api-v2.json"), load("function-url-v2.json")]
V1_EXAMPLES = [load("http-api-v1.json"), load("rest-api-proxy-v1.json")]


def test_v2_event_has_the_documented_shape():
    event = v2(make_request(**FULL))
    assert shape_errors(event, V2_EXAMPLES, V2_OPTIONAL, set()) == []
    # the features the full request exercises are all present
    assert {"cookies", "queryStringParameters", "body"} <= event.keys()


def test_v2_event_of_a_bare_get_leaves_absent_parts_out():
    event = v2(make_request())
    assert shape_errors(event, V2_EXAMPLES, V2_OPTIONAL, set()) == []
    for key in ("cookies", "queryStringParameters", "body", "pathParameters", "stageVariables"):
        assert key not in event
    assert event["isBase64Encoded"] is False


def test_v1_event_has_the_documented_shape():
    event = v1(make_request(**FULL))
    assert shape_errors(event, V1_EXAMPLES, V1_OPTIONAL, V1_NULLABLE) == []
    assert event["body"] is not None and event["queryStringParameters"] is not None


def test_v1_event_of_a_bare_get_has_nulls():
    event = v1(make_request())
    assert shape_errors(event, V1_EXAMPLES, V1_OPTIONAL, V1_NULLABLE) == []
    for key in ("queryStringParameters", "multiValueQueryStringParameters", "body"):
        assert event[key] is None
    assert event["resource"] == "/" and event["pathParameters"] is None


def test_shape_comparison_catches_a_wrong_type_and_an_unknown_key():
    event = v2(make_request(**FULL))
    event["requestContext"]["timeEpoch"] = str(NOW_MS)
    event["extra"] = 1
    errors = shape_errors(event, V2_EXAMPLES, V2_OPTIONAL, set())
    assert "event.requestContext.timeEpoch: str, documented int" in errors
    assert "event.extra: not in any documented example" in errors


# --- event values ---------------------------------------------------------------------------


def test_v2_event_values():
    event = v2(make_request(**FULL), stage="$default")
    assert event["rawPath"] == "/my/path"
    assert event["rawQueryString"] == "parameter1=value1&parameter1=value2&parameter2=value"
    assert event["queryStringParameters"] == {"parameter1": "value1,value2", "parameter2": "value"}
    assert event["cookies"] == ["cookie1=a", "cookie2=b"]
    headers = event["headers"]
    assert "cookie" not in headers
    assert headers["header2"] == "value1,value2"
    assert headers["host"] == "api.example.com:8080"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-port"] == "8080"
    assert all(name == name.lower() for name in headers)
    ctx = event["requestContext"]
    assert ctx["http"] == {
        "method": "POST",
        "path": "/my/path",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "agent",
    }
    assert ctx["time"] == "04/Mar/2020:19:03:58 +0000" and ctx["timeEpoch"] == NOW_MS
    assert ctx["domainName"] == "api.example.com:8080" and ctx["domainPrefix"] == "api"
    assert (event["body"], event["isBase64Encoded"]) == ("Hello from Lambda", False)


def test_v2_decodes_path_and_query_but_keeps_the_raw_query():
    event = v2(make_request(target="/caf%C3%A9/a%20b?q=a+b%26c&q=%C3%A9&flag"))
    assert event["rawPath"] == "/café/a b" == event["requestContext"]["http"]["path"]
    assert event["rawQueryString"] == "q=a+b%26c&q=%C3%A9&flag"
    assert event["queryStringParameters"] == {"q": "a b&c,é", "flag": ""}


@pytest.mark.parametrize(
    ("content_type", "text_v2", "text_v1"),
    [
        ("text/html; charset=utf-8", True, True),
        ("application/json", True, True),
        ("application/xml", True, True),
        ("application/javascript", True, True),
        ("application/x-www-form-urlencoded", False, True),
        ("application/octet-stream", False, False),
        ("image/png", False, False),
        (None, False, False),
    ],
)
def test_body_encoding_follows_the_content_type(content_type, text_v2, text_v1):
    headers = [("Host", "h")] + ([("Content-Type", content_type)] if content_type else [])
    request = make_request("POST", "/", headers, b"a=1&b=%C3%A9")
    for event, text in ((v2(request), text_v2), (v1(request), text_v1)):
        assert event["isBase64Encoded"] is not text
        decoded = event["body"].encode() if text else base64.b64decode(event["body"])
        assert decoded == b"a=1&b=%C3%A9"


def test_text_body_that_is_not_utf8_is_sent_as_base64():
    request = make_request("POST", "/", [("Content-Type", "text/plain")], b"\xff\xfe")
    event = v2(request)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe"


def test_v1_event_values():
    request = make_request(
        "PUT",
        "/a/b%20c?x=1&x=2&y=",
        [("Host", "h.example"), ("X-Multi", "1"), ("X-Multi", "2"), ("Cookie", "k=v")],
    )
    event = v1(request, stage="prod")
    assert event["path"] == "/a/b%20c"
    assert event["resource"] == "/{proxy+}" == event["requestContext"]["resourcePath"]
    assert event["pathParameters"] == {"proxy": "a/b c"}
    assert event["httpMethod"] == "PUT" == event["requestContext"]["httpMethod"]
    assert event["headers"]["X-Multi"] == "2"
    assert event["multiValueHeaders"]["X-Multi"] == ["1", "2"]
    assert event["headers"]["Cookie"] == "k=v"
    assert event["queryStringParameters"] == {"x": "2", "y": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": [""]}
    assert event["requestContext"]["path"] == "/prod/a/b%20c"
    assert event["requestContext"]["stage"] == "prod"
    assert event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    assert event["headers"]["X-Forwarded-Port"] == "80"


def test_forwarded_headers_keep_what_the_client_sent():
    request = make_request(
        headers=[("host", "h"), ("x-forwarded-for", "10.0.0.1"), ("X-Forwarded-Proto", "https")]
    )
    assert v2(request)["headers"]["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert v2(request)["headers"]["x-forwarded-proto"] == "https"
    event = v1(request)
    assert event["headers"]["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert "X-Forwarded-For" not in event["headers"]
    assert event["headers"]["X-Forwarded-Proto"] == "https"


def test_request_time_format_and_ids():
    assert events.format_request_time(0) == "01/Jan/1970:00:00:00 +0000"
    assert events.format_request_time(1583349317135) == "04/Mar/2020:19:15:17 +0000"
    ids = {events.apigw_request_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 16 and i.endswith("=") for i in ids)


# --- the libraries functions are written with, fed our events -----------------------------


def context_for(name: str = "fn") -> LambdaContext:
    env = lambda_environment(
        function_name=name,
        handler="app.handler",
        task_root="/tmp",
        memory_mb=128,
        region="eu-west-1",
    )
    return new_context(env, timeout_s=3, invoked_function_arn=function_arn("eu-west-1", "1", name))


def powertools_app(resolver_class):
    from aws_lambda_powertools.event_handler import Response as PTResponse
    from aws_lambda_powertools.shared.cookies import Cookie

    app = resolver_class()

    @app.get("/items/<item_id>")
    def get_item(item_id):
        event = app.current_event
        return {"id": item_id, "tags": event.resolved_query_string_parameters.get("tag")}

    @app.post("/echo")
    def echo():
        event = app.current_event
        return PTResponse(
            status_code=201,
            content_type="application/json",
            body={"got": event.json_body, "cookies": event.resolved_cookies_field},
            cookies=[Cookie("a", "1", secure=False), Cookie("b", "2", secure=False)],
        )

    return app


@pytest.mark.parametrize("fmt", ["2.0", "1.0"])
def test_powertools_resolvers_route_our_events(fmt):
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, APIGatewayRestResolver

    build, mapping = (
        (v2, responses.map_result_v2) if fmt == "2.0" else (v1, responses.map_result_v1)
    )
    app = powertools_app(APIGatewayHttpResolver if fmt == "2.0" else APIGatewayRestResolver)

    response = mapping(
        app.resolve(build(make_request(target="/items/42?tag=a&tag=b")), context_for())
    )
    assert response.status == 200
    assert json.loads(response.body) == {"id": "42", "tags": ["a", "b"]}

    request = make_request(
        "POST",
        "/echo",
        [("Host", "h"), ("Content-Type", "application/json"), ("Cookie", "s=1; t=2")],
        b'{"x": [1, 2]}',
    )
    response = mapping(app.resolve(build(request), context_for()))
    assert response.status == 201
    assert json.loads(response.body) == {"got": {"x": [1, 2]}, "cookies": {"s": "1", "t": "2"}}
    assert [v for n, v in response.headers if n.lower() == "set-cookie"] == ["a=1", "b=2"]

    missing = mapping(app.resolve(build(make_request(target="/nowhere")), context_for()))
    assert missing.status == 404


@pytest.mark.parametrize("fmt", ["2.0", "1.0"])
def test_mangum_asgi_app_serves_our_events(fmt):
    api = FastAPI()

    @api.post("/echo/{name}")
    async def echo(name: str, request: FastAPIRequest):
        data = await request.body()
        if request.headers.get("content-type") == "application/octet-stream":
            return FastAPIResponse(
                data[::-1], media_type="application/octet-stream", status_code=202
            )
        response = JSONResponse(
            {
                "name": name,
                "tags": request.query_params.getlist("tag"),
                "cookies": dict(request.cookies),
                "url": str(request.url),
            },
            status_code=201,
        )
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    handler = Mangum(api, lifespan="off")
    build, mapping = (
        (v2, responses.map_result_v2) if fmt == "2.0" else (v1, responses.map_result_v1)
    )

    request = make_request(
        "POST",
        "/echo/caf%C3%A9?tag=x&tag=y",
        [("Host", "127.0.0.1:8080"), ("Cookie", "s=1; t=2"), ("Content-Type", "text/plain")],
        b"hi",
    )
    response = mapping(handler(build(request), context_for()))
    assert response.status == 201
    assert json.loads(response.body) == {
        "name": "café",
        "tags": ["x", "y"],
        "cookies": {"s": "1", "t": "2"},
        # scheme from X-Forwarded-Proto, host from Host; the path's form is Starlette's choice
        "url": "http://127.0.0.1:8080/echo/café?tag=x&tag=y",
    }
    cookies = [v for n, v in response.headers if n.lower() == "set-cookie"]
    assert [c.split(";")[0] for c in cookies] == ["a=1", "b=2"]

    payload = bytes(range(256))
    request = make_request(
        "POST", "/echo/bin", [("Host", "h"), ("Content-Type", "application/octet-stream")], payload
    )
    response = mapping(handler(build(request), context_for()))
    assert (response.status, response.body) == (202, payload[::-1])


# --- response mapping -----------------------------------------------------------------------


def header(response, name: str) -> list[str]:
    return [v for n, v in response.headers if n.lower() == name.lower()]


@pytest.mark.parametrize(
    ("result", "body"),
    [
        ({"message": "Hello"}, b'{"message": "Hello"}'),
        ("Hello, world!", b'"Hello, world!"'),
        (42, b"42"),
        (1.5, b"1.5"),
        ([1, "a"], b'[1, "a"]'),
        (None, b"null"),
        (True, b"true"),
        ("caf\u00e9", b'"caf\\u00e9"'),
        (b'{"a": 1}', b'{"a": 1}'),
        ({"n": decimal.Decimal("1.50"), "i": decimal.Decimal("3")}, b'{"n": 1.5, "i": 3}'),
    ],
)
def test_v2_any_value_without_status_code_is_a_json_200(result, body):
    response = responses.map_result_v2(result)
    assert (response.status, response.body) == (200, body)
    assert header(response, "content-type") == ["application/json"]


def test_v2_response_object():
    response = responses.map_result_v2(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "text/html", "X-Count": 3, "X-Flag": True},
            "cookies": ["a=1; Path=/", "b=2; Max-Age=60"],
            "body": "<p>hi</p>",
            "ignoredKey": "whatever",
        }
    )
    assert response.status == 201 and response.body == b"<p>hi</p>"
    assert header(response, "content-type") == ["text/html"]
    assert header(response, "x-count") == ["3"] and header(response, "x-flag") == ["true"]
    assert header(response, "set-cookie") == ["a=1; Path=/", "b=2; Max-Age=60"]


def test_v2_response_object_defaults():
    response = responses.map_result_v2({"statusCode": 200, "body": "plain"})
    assert header(response, "content-type") == ["text/plain; charset=utf-8"]
    empty = responses.map_result_v2({"statusCode": 204})
    assert (empty.status, empty.body, empty.headers) == (204, b"", [])
    suppressed = responses.map_result_v2(
        {"statusCode": 200, "headers": {"Content-Type": None}, "body": "x"}
    )
    assert header(suppressed, "content-type") == []


def test_base64_bodies_are_decoded():
    payload = bytes(range(256))
    encoded = base64.b64encode(payload).decode()
    for mapping, flag in (
        (responses.map_result_v2, "isBase64Encoded"),
        (responses.map_result_v1, "isBase64Encoded"),
        (responses.map_result_v1, "base64Encoded"),
    ):
        response = mapping({"statusCode": 200, "body": encoded, flag: True})
        assert response.body == payload
    text = responses.map_result_v2({"statusCode": 200, "body": encoded, "isBase64Encoded": False})
    assert text.body == encoded.encode()


def test_v1_merges_headers_and_multi_value_headers():
    response = responses.map_result_v1(
        {
            "statusCode": 200,
            "headers": {"X-One": "a", "X-Both": "same", "X-Other": "single"},
            "multiValueHeaders": {"X-Both": ["same", "more"], "Set-Cookie": ["c=1", "d=2"]},
            "body": "{}",
        }
    )
    assert header(response, "x-both") == ["same", "more"]
    assert header(response, "x-one") == ["a"] and header(response, "x-other") == ["single"]
    assert header(response, "set-cookie") == ["c=1", "d=2"]
    assert header(response, "content-type") == ["application/json"]


@pytest.mark.parametrize(
    "result",
    [
        "a string",
        42,
        None,
        {"body": "no status"},
        {"statusCode": 200, "unexpected": 1},
        {"statusCode": "abc"},
        {"statusCode": 99},
        {"statusCode": True},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "headers": ["X", "y"]},
        {"statusCode": 200, "headers": {"X-Bad": "a\r\nInjected: 1"}},
        {"statusCode": 200, "multiValueHeaders": {"X": "not a list"}},
        {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
        {"statusCode": 200, "isBase64Encoded": "maybe"},
    ],
)
def test_v1_malformed_output_is_rejected(result):
    with pytest.raises(responses.LambdaResponseError):
        responses.map_result_v1(result)


@pytest.mark.parametrize(
    "result",
    [
        object(),
        {"a": object()},
        b"not json",
        {"statusCode": "abc"},
        {"statusCode": 200, "body": ["list"]},
        {"statusCode": 200, "headers": {"X": {"nested": 1}}},
    ],
)
def test_v2_malformed_output_is_rejected(result):
    with pytest.raises(responses.LambdaResponseError):
        responses.map_result_v2(result)


def test_v1_status_code_as_digit_string_is_accepted():
    assert responses.map_result_v1({"statusCode": "404"}).status == 404


def test_error_responses_mirror_api_gateway():
    def pair(response):
        return response.status, response.body

    assert pair(responses.function_error_response("1.0")) == (
        502,
        b'{"message": "Internal server error"}',
    )
    assert pair(responses.function_error_response("2.0")) == (
        500,
        b'{"message":"Internal Server Error"}',
    )
    assert pair(responses.timeout_response("1.0", 3)) == pair(
        responses.function_error_response("1.0")
    )
    assert pair(responses.timeout_response("2.0", 3)) == pair(
        responses.function_error_response("2.0")
    )
    assert pair(responses.timeout_response("1.0", 60)) == (
        504,
        b'{"message": "Endpoint request timed out"}',
    )
    assert pair(responses.timeout_response("2.0", 60)) == (
        503,
        b'{"message":"Service Unavailable"}',
    )


# --- environment --------------------------------------------------------------------------


def function_env(name: str, **extra: str) -> dict[str, str]:
    return lambda_environment(
        function_name=name,
        handler=f"{name}.handler",
        task_root=f"/code/{name}",
        memory_mb=256,
        region="us-east-1",
        extra=extra,
    )


def test_lambda_environment_has_the_defined_variables():
    env = function_env("orders", TABLE="orders-table")
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "orders"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["_HANDLER"] == "orders.handler" and env["LAMBDA_TASK_ROOT"] == "/code/orders"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/orders"
    assert "/[$LATEST]" in env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert env["AWS_EXECUTION_ENV"].startswith("AWS_Lambda_python3.")
    assert env["TZ"] == ":UTC" and env["LANG"] == "en_US.UTF-8"
    assert env["TABLE"] == "orders-table"
    assert (
        function_env("x")["AWS_LAMBDA_LOG_STREAM_NAME"]
        != function_env("x")["AWS_LAMBDA_LOG_STREAM_NAME"]
    )


@pytest.mark.parametrize("key", ["AWS_REGION", "_HANDLER", "1BAD", "X", "has-dash"])
def test_reserved_or_invalid_keys_are_refused(key):
    with pytest.raises(ValueError):
        function_env("f", **{key: "v"})


def test_two_functions_on_threads_see_their_own_environment():
    envs = {"alpha": function_env("alpha", SHARED="from-alpha"), "beta": function_env("beta")}
    os.environ["FLEXILIB_TEST_PROCESS"] = "process"
    both_inside = threading.Barrier(2)
    both_wrote = threading.Barrier(2)
    seen: dict[str, dict] = {}
    failures: list[BaseException] = []

    def run(name: str) -> None:
        try:
            from os import environ as imported_early  # a reference taken elsewhere

            with function_environment(envs[name]):
                both_inside.wait(timeout=10)
                os.environ["WRITTEN"] = name
                os.environ.setdefault("DEFAULTED", name)
                del os.environ["FLEXILIB_TEST_PROCESS"]
                both_wrote.wait(timeout=10)
                seen[name] = {
                    "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
                    "getenv": os.getenv("AWS_LAMBDA_FUNCTION_NAME"),
                    "get": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
                    "imported": imported_early["AWS_LAMBDA_FUNCTION_NAME"],
                    "shared": os.getenv("SHARED"),
                    "written": os.environ["WRITTEN"],
                    "defaulted": os.environ["DEFAULTED"],
                    "process_var": "FLEXILIB_TEST_PROCESS" in os.environ,
                    "home": os.environ.get("HOME") == os.environb.get(b"HOME", b"").decode(),
                    "copy": os.environ.copy(),
                    "len": len(os.environ),
                }
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in envs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    try:
        assert not failures, failures
        for name in envs:
            view = seen[name]
            assert view["name"] == view["getenv"] == view["get"] == view["imported"] == name
            assert view["written"] == view["defaulted"] == name
            assert view["process_var"] is False
            assert view["home"] is True  # the process environment shows through
            assert view["copy"]["AWS_LAMBDA_FUNCTION_NAME"] == name
            assert "FLEXILIB_TEST_PROCESS" not in view["copy"]
            assert view["len"] == len(view["copy"])
        assert seen["alpha"]["shared"] == "from-alpha" and seen["beta"]["shared"] is None
        # writes stayed in each function's own dictionary, for its next invocation
        assert envs["alpha"]["WRITTEN"] == "alpha" and envs["beta"]["WRITTEN"] == "beta"
        # and outside any function nothing changed
        assert os.environ["FLEXILIB_TEST_PROCESS"] == "process"
        for key in ("AWS_LAMBDA_FUNCTION_NAME", "WRITTEN", "DEFAULTED", "SHARED"):
            assert key not in os.environ and os.getenv(key) is None
    finally:
        del os.environ["FLEXILIB_TEST_PROCESS"]


def test_outside_a_function_os_environ_still_reaches_the_process_environment():
    with function_environment(function_env("f")):  # make sure the overlay is installed
        pass
    os.environ["FLEXILIB_OUTSIDE"] = "yes"
    try:
        out = subprocess.run(
            ["sh", "-c", 'printf %s "$FLEXILIB_OUTSIDE"'], capture_output=True, check=True
        )
        assert out.stdout == b"yes"
        assert "FLEXILIB_OUTSIDE" in os.environ.copy()
        assert repr(os.environ).startswith("environ({")
    finally:
        del os.environ["FLEXILIB_OUTSIDE"]
    out = subprocess.run(["sh", "-c", 'printf %s "$FLEXILIB_OUTSIDE"'], capture_output=True)
    assert out.stdout == b""
    with pytest.raises(KeyError):
        del os.environ["FLEXILIB_OUTSIDE"]


def test_deleting_an_unknown_variable_inside_a_function_raises_key_error():
    with function_environment(function_env("f")):
        with pytest.raises(KeyError):
            del os.environ["FLEXILIB_NEVER_SET"]
        with pytest.raises(TypeError):
            os.environ["X"] = 1  # type: ignore[assignment]


# --- context ------------------------------------------------------------------------------


def test_context_has_the_runtime_context_attributes():
    from awslambdaric.lambda_context import LambdaContext as RuntimeContext

    runtime = RuntimeContext("id", None, None, 0, "arn", None)
    ours = context_for()
    public = {n for n in dir(runtime) if not n.startswith("_")}
    assert public == {n for n in dir(ours) if not n.startswith("_")}
    for name in public:
        assert callable(getattr(runtime, name)) == callable(getattr(ours, name)), name
    assert isinstance(ours.memory_limit_in_mb, str) and ours.memory_limit_in_mb == "128"
    assert ours.function_name == "fn" and ours.function_version == "$LATEST"
    assert ours.invoked_function_arn == "arn:aws:lambda:eu-west-1:1:function:fn"
    assert ours.log_group_name == "/aws/lambda/fn"
    assert ours.identity.cognito_identity_id is None and ours.client_context is None
    assert context_for().aws_request_id != ours.aws_request_id


def test_context_client_context_and_identity_like_the_runtime():
    from awslambdaric.lambda_context import LambdaContext as RuntimeContext

    client_context = {
        "client": {"installation_id": "i", "app_title": "t"},
        "custom": {"k": "v"},
        "env": {"platform": "x"},
        "w3c": {"traceparent": "00-abc-01", "tracestate": 5},
    }
    cognito = {"cognitoIdentityId": "cid", "cognitoIdentityPoolId": "pool"}
    runtime = RuntimeContext("id", dict(client_context), cognito, 0, "arn", None)
    ours = LambdaContext(
        aws_request_id="id",
        function_name=None,
        function_version=None,
        invoked_function_arn="arn",
        memory_limit_in_mb=None,
        log_group_name=None,
        log_stream_name=None,
        deadline=time.monotonic(),
        client_context=client_context,
        cognito_identity=cognito,
    )
    for obj in (runtime, ours):
        assert obj.client_context.client.installation_id == "i"
        assert obj.client_context.client.app_version_code is None
        assert obj.client_context.custom == {"k": "v"}
        assert obj.identity.cognito_identity_id == "cid"
        assert obj.identity.cognito_identity_pool_id == "pool"
    assert ours.w3c() == runtime.w3c() == {"traceparent": "00-abc-01"}
    assert repr(ours.identity) == repr(runtime.identity)


def test_remaining_time_counts_down_to_the_deadline():
    context = new_context(function_env("f"), timeout_s=0.5, invoked_function_arn="arn")
    first = context.get_remaining_time_in_millis()
    assert 0 < first <= 500
    time.sleep(0.05)  # the passing of time is what is under test
    second = context.get_remaining_time_in_millis()
    assert second <= first - 49
    expired = new_context(function_env("f"), timeout_s=-1, invoked_function_arn="arn")
    assert expired.get_remaining_time_in_millis() == 0
