"""Turn a Lambda handler's return value into the HTTP response API Gateway would send.

`map_result_v2` follows an HTTP API with payload format 2.0, `map_result_v1`
a REST API Lambda proxy integration. Both raise `LambdaResponseError` when
API Gateway would reject the function's output; the caller logs the reason
and answers `function_error_response(fmt)`, which is what the client would
get from API Gateway.

What each error mirrors (sources in the function docstrings):

- the function raised, timed out, or returned something API Gateway rejects:
  HTTP API 500 `{"message":"Internal Server Error"}`, REST API 502
  `{"message": "Internal server error"}`;
- API Gateway's own integration timeout (30 s HTTP API, 29 s REST API) ran
  out before the function's: HTTP API 503 `{"message":"Service Unavailable"}`,
  REST API 504 `{"message": "Endpoint request timed out"}`.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
import re
import sys
from collections.abc import Mapping
from typing import Any

from flexilib.response import Response

__all__ = [
    "INTEGRATION_TIMEOUT_S",
    "LambdaResponseError",
    "function_error_response",
    "function_response",
    "integration_timeout_response",
    "map_result_v1",
    "map_result_v2",
    "marshal",
    "no_route_response",
    "timeout_response",
]

#: API Gateway's own limit on waiting for the integration, per payload format:
#: 30 s for HTTP APIs ("HTTP API quotas"), 29 s by default for REST APIs.
INTEGRATION_TIMEOUT_S = {"2.0": 30.0, "1.0": 29.0}

_JSON = "application/json"
# What an HTTP API puts on a structured response that names no Content-Type (observed; the
# documentation is silent).
_V2_DEFAULT_TYPE = "text/plain; charset=utf-8"
# The runtime serialises return values with ensure_ascii up to Python 3.11, without from 3.12
# (awslambdaric, lambda_runtime_marshaller.py).
_ENSURE_ASCII = sys.version_info < (3, 12)
# The keys a REST API accepts in a proxy response; `cookies` is tolerated and ignored.
_V1_KEYS = frozenset(
    {
        "statusCode",
        "headers",
        "multiValueHeaders",
        "body",
        "isBase64Encoded",
        "base64Encoded",
        "cookies",
    }
)


# What a header name may not hold (API Gateway refuses it); the server's own rules come after.
_NOT_IN_NAME = re.compile("[ \t\r\n\0:]")
_V2_BASE64_KEYS = ("isBase64Encoded",)
# REST APIs also read `base64Encoded` (observed; AWS SAM's emulator does the same).
_V1_BASE64_KEYS = ("base64Encoded", "isBase64Encoded")


class LambdaResponseError(ValueError):
    """The function's output is not something API Gateway accepts; the message says why."""


def _json_default(value: Any) -> Any:
    """Decimals as JSON numbers, as the runtime's encoder writes them."""
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _serialise(result: Any) -> str:
    """The runtime's JSON serialisation of a return value (Runtime.MarshalError when impossible)."""
    try:
        return json.dumps(result, ensure_ascii=_ENSURE_ASCII, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise LambdaResponseError(
            f"Runtime.MarshalError: Unable to marshal response: {exc}"
        ) from None


def marshal(result: Any) -> Any:
    """A return value as API Gateway receives it: the runtime's JSON, read back.

    The Python runtime serialises whatever the handler returns before API
    Gateway sees it, so `HTTPStatus.NOT_FOUND` arrives as 404, a Decimal as a
    number, a tuple as a list, and a value JSON cannot hold is a
    Runtime.MarshalError. Bytes go out as they are (the runtime sends them
    unchanged), and so does a value already made of plain JSON types.
    """
    if isinstance(result, (bytes, bytearray)) or _plain(result):
        return result  # the round trip would give the same value back
    return json.loads(_serialise(result))


def _plain(value: Any) -> bool:
    """Whether `value` is made of exactly the types JSON gives back (no subclass such as
    HTTPStatus, no Decimal, tuple or float): then marshalling is the identity. A loop, not
    recursion: 1.6 us of CPU for a typical response object, against 13.5 us for the round
    trip (measured on the bench machine)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is dict:
            for key, inner in item.items():
                if type(key) is not str:
                    return False
                stack.append(inner)
        elif kind is list:
            stack.extend(item)
        else:
            return False
    return True


def _status(value: Any) -> int:
    if type(value) is int and 100 <= value <= 599:
        return value
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if type(value) is not int or not 100 <= value <= 599:
        raise LambdaResponseError(f"statusCode must be an integer from 100 to 599, not {value!r}")
    return value


def _flag(result: Mapping[str, Any], key: str) -> bool:
    value = result.get(key, False)
    if value is False or value is None or value in ("false", "False"):
        return False
    if value is True or value in ("true", "True"):
        return True
    raise LambdaResponseError(f"{key} must be a boolean, not {value!r}")


def _header_value(name: str, value: Any) -> str:
    if type(value) is str:
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (str, int, float)):
        text = str(value)
    else:
        raise LambdaResponseError(f"header {name!r} has a value of type {type(value).__name__}")
    if "\r" in text or "\n" in text or "\0" in text:
        raise LambdaResponseError(f"header {name!r} has a line break or NUL in its value")
    return text


def _header_name(name: Any) -> str:
    if not isinstance(name, str) or not name or _NOT_IN_NAME.search(name):
        raise LambdaResponseError(f"invalid header name {name!r}")
    return name


def _headers(value: Any, key: str) -> Mapping[str, Any]:
    if type(value) is dict:
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise LambdaResponseError(f"{key} must be an object, not {type(value).__name__}")
    return value


def _body(result: Mapping[str, Any], base64_keys: tuple[str, ...]) -> bytes:
    encoded = any([_flag(result, key) for key in base64_keys])  # every flag checked
    body = result.get("body")
    if body is None:
        return b""
    if type(body) is str:
        text = body
    elif isinstance(body, bool) or not isinstance(body, (int, float)):
        raise LambdaResponseError(f"body must be a string, not {type(body).__name__}")
    else:
        text = str(body)
    if encoded:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise LambdaResponseError("isBase64Encoded is true but body is not base64") from None
    return text.encode("utf-8")


def _response(body: bytes, status: int, headers: list[tuple[str, str]]) -> Response:
    """A Response holding `headers` as they are: every name and value was checked a string."""
    response = Response(body, status)
    response.headers = headers
    return response


def _add_content_type(headers: list[tuple[str, str]], suppressed: bool, default: str) -> None:
    if suppressed:
        return
    for name, _ in headers:
        if name.lower() == "content-type":
            return
    headers.append(("Content-Type", default))


def function_response(result: Any, fmt: str) -> Response:
    """The response for what a function returned: the runtime's marshalling (`marshal`), then
    API Gateway's mapping in payload format `fmt` (LambdaResponseError where it refuses)."""
    if fmt == "1.0":
        return map_result_v1(marshal(result))
    return _simple_v2(result) or map_result_v2(marshal(result))


_SIMPLE_V2_KEYS = frozenset({"statusCode", "headers", "body"})


def _simple_v2(result: Any) -> Response | None:
    """`map_result_v2(marshal(result))` in one pass for the common response object, or None.

    The common object is a dict of an int `statusCode`, a dict of string
    `headers` and a string `body`, and nothing else; for anything else,
    failures included, the general path answers. Marshalling is the identity
    for it, and each step of the mapping is done inline: 7.5k instructions
    against 35.7k for `marshal` and `map_result_v2` (callgrind, the bench's
    response), a fifth of what a `lambda:` call cost.
    """
    if type(result) is not dict or not result.keys() <= _SIMPLE_V2_KEYS:
        return None
    status = result.get("statusCode")
    if type(status) is not int or not 100 <= status <= 599:
        return None
    headers: list[tuple[str, str]] = []
    typed = False
    given = result.get("headers")
    if given is not None:
        if type(given) is not dict:
            return None
        for name, value in given.items():
            if type(name) is not str or type(value) is not str or not name:
                return None
            if _NOT_IN_NAME.search(name) or "\r" in value or "\n" in value or "\0" in value:
                return None
            headers.append((name, value))
            typed = typed or name.lower() == "content-type"
    body = result.get("body")
    if body is None:
        data = b""
    elif type(body) is str:
        data = body.encode("utf-8")
    else:
        return None
    if data and not typed:
        headers.append(("Content-Type", _V2_DEFAULT_TYPE))
    return _response(data, status, headers)


def map_result_v2(result: Any) -> Response:
    """An HTTP API's response for a payload-format-2.0 function result.

    Mirrors "Create AWS Lambda proxy integrations for HTTP APIs", section
    "Lambda function response for format 2.0", and "Invoking Lambda function
    URLs" (same format):

    - a dict with `statusCode` is a response object: `statusCode`, `headers`
      (one value each; several values joined by the function), `cookies` (each
      one a `Set-Cookie` header), `body`, `isBase64Encoded` (body decoded);
      other keys are ignored;
    - any other JSON value (a dict without `statusCode`, a string, a number, a
      list, None) is the body of a 200 `application/json` response, serialised
      as the runtime does: the string `Hello` becomes `"Hello"`;
    - bytes are what the runtime sends as is: they must hold JSON.

    A response object without Content-Type gets `text/plain; charset=utf-8`
    when it has a body, as HTTP APIs were observed to do. A header whose value
    is null is left out, and a null Content-Type suppresses that default.
    """
    if isinstance(result, (bytes, bytearray)):
        try:
            result = json.loads(result)
        except ValueError:
            raise LambdaResponseError("the function returned bytes that are not JSON") from None
    if not ((type(result) is dict or isinstance(result, Mapping)) and "statusCode" in result):
        return Response(_serialise(result), 200, [("Content-Type", _JSON)])

    status = _status(result["statusCode"])
    headers: list[tuple[str, str]] = []
    suppressed = False
    for name, value in _headers(result.get("headers"), "headers").items():
        name = _header_name(name)
        if value is None:
            suppressed = suppressed or name.lower() == "content-type"
            continue
        headers.append((name, _header_value(name, value)))
    cookies = result.get("cookies")
    if isinstance(cookies, list):
        for cookie in cookies:
            headers.append(("Set-Cookie", _header_value("Set-Cookie", cookie)))
    body = _body(result, _V2_BASE64_KEYS)
    if body:
        _add_content_type(headers, suppressed, _V2_DEFAULT_TYPE)
    return _response(body, status, headers)


def map_result_v1(result: Any) -> Response:
    """A REST API's response for a Lambda proxy integration result (payload format 1.0).

    Mirrors "Lambda proxy integrations in API Gateway", section "Output format
    of a Lambda function for proxy integration": the result must be an object
    with `statusCode`; `headers` (one value each) and `multiValueHeaders`
    (lists) are merged, a name/value pair present in both appearing once;
    `body` is a string, base64-decoded when `isBase64Encoded` is true; "if the
    function output is of a different format, API Gateway returns a 502".
    Keys outside the format make a REST API reject the output too (observed,
    and what AWS SAM's emulator enforces). Without a Content-Type the response
    is `application/json`, as REST APIs answer; a null Content-Type suppresses
    that. Unlike a REST API without binary media types, a base64 body is always
    decoded (as if `*/*` were configured).
    """
    if not isinstance(result, Mapping):
        raise LambdaResponseError(
            f"Malformed Lambda proxy response: an object is required, not {type(result).__name__}"
        )
    unknown = result.keys() - _V1_KEYS
    if unknown:
        raise LambdaResponseError(
            f"Malformed Lambda proxy response: unknown keys {sorted(unknown)}"
        )
    if "statusCode" not in result:
        raise LambdaResponseError("Malformed Lambda proxy response: statusCode is missing")
    status = _status(result["statusCode"])

    headers: list[tuple[str, str]] = []
    suppressed = False
    in_multi: set[tuple[str, str]] = set()
    for name, values in _headers(result.get("multiValueHeaders"), "multiValueHeaders").items():
        name = _header_name(name)
        if values is None:
            continue
        if not isinstance(values, list):
            raise LambdaResponseError(f"multiValueHeaders[{name!r}] must be a list")
        for value in values:
            text = _header_value(name, value)
            headers.append((name, text))
            in_multi.add((name.lower(), text))
    for name, value in _headers(result.get("headers"), "headers").items():
        name = _header_name(name)
        if value is None:
            suppressed = suppressed or name.lower() == "content-type"
            continue
        text = _header_value(name, value)
        if (name.lower(), text) not in in_multi:
            headers.append((name, text))
    body = _body(result, _V1_BASE64_KEYS)
    _add_content_type(headers, suppressed, _JSON)
    return _response(body, status, headers)


def function_error_response(fmt: str) -> Response:
    """What the client gets when the function fails: an unhandled exception, a function
    timeout (Lambda reports it as an error, "Task timed out after N seconds"), a
    runtime marshalling error, or output API Gateway rejects.

    - REST API (1.0): 502 `{"message": "Internal server error"}` (Lambda Developer
      Guide, "Using AWS Lambda with Amazon API Gateway", section "Handling errors
      with an API Gateway API": "If the function runs but returns an error, or
      returns a response in the wrong format, API Gateway returns a 502").
    - HTTP API (2.0): 500 `{"message":"Internal Server Error"}` (API Gateway
      Developer Guide, "Troubleshooting issues with HTTP API Lambda
      integrations"; the status is the one HTTP APIs were observed to return).
    """
    if fmt == "1.0":
        return Response(b'{"message": "Internal server error"}', 502, [("Content-Type", _JSON)])
    return Response(b'{"message":"Internal Server Error"}', 500, [("Content-Type", _JSON)])


def integration_timeout_response(fmt: str) -> Response:
    """What the client gets when API Gateway stops waiting (`INTEGRATION_TIMEOUT_S`) before
    the function's own timeout ends it.

    - REST API: 504 `{"message": "Endpoint request timed out"}`.
    - HTTP API: 503 `{"message":"Service Unavailable"}`.
    """
    if fmt == "1.0":
        return Response(
            b'{"message": "Endpoint request timed out"}', 504, [("Content-Type", _JSON)]
        )
    return Response(b'{"message":"Service Unavailable"}', 503, [("Content-Type", _JSON)])


def timeout_response(fmt: str, function_timeout_s: float) -> Response:
    """The response for a request whose function did not finish in time.

    Whichever limit is shorter fires first: the function's timeout makes a
    function error; API Gateway's integration timeout its own answer. Wait
    `min(function_timeout_s, INTEGRATION_TIMEOUT_S[fmt])` before calling this.
    """
    if function_timeout_s < INTEGRATION_TIMEOUT_S[fmt]:
        return function_error_response(fmt)
    return integration_timeout_response(fmt)


def no_route_response(fmt: str) -> Response:
    """What API Gateway answers for a request no route matches.

    - HTTP API (2.0): 404 `{"message":"Not Found"}`;
    - REST API (1.0): 403 `{"message":"Missing Authentication Token"}` (a REST
      API gives no 404 for an unknown resource or method: "Troubleshooting
      ... Missing Authentication Token").
    """
    if fmt == "1.0":
        return Response(
            b'{"message":"Missing Authentication Token"}', 403, [("Content-Type", _JSON)]
        )
    return Response(b'{"message":"Not Found"}', 404, [("Content-Type", _JSON)])
