"""The one-pass mapping of a common format 2.0 response object (kinds/aws/responses.py).

`function_response(result, "2.0")` takes `_simple_v2` when it can: for every result it
must answer exactly what the general path (`map_result_v2(marshal(result))`) answers.
"""

from __future__ import annotations

import decimal
from http import HTTPStatus

import pytest

from flexilib.kinds.aws.responses import (
    LambdaResponseError,
    _simple_v2,
    map_result_v2,
    marshal,
)

RESULTS = [
    {"statusCode": 200, "headers": {"content-type": "text/plain", "x-a": "b"}, "body": " 1"},
    {"statusCode": 201, "body": "made"},
    {"statusCode": 204},
    {"statusCode": 200, "headers": {}, "body": ""},
    {"statusCode": 200, "headers": None, "body": None},
    {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"},
    {"statusCode": 404, "headers": {"X-Many": "a,b"}, "body": "héllo ✓"},
    # not the common object: the general path answers (or refuses)
    {"statusCode": HTTPStatus.OK, "body": "status is an IntEnum"},
    {"statusCode": "200", "body": "status as text"},
    {"statusCode": True, "body": "a bool is no status"},
    {"statusCode": 600, "body": "out of range"},
    {"statusCode": 200, "headers": {"x-n": 5}, "body": "a number header"},
    {"statusCode": 200, "headers": {"content-type": None}, "body": "suppressed type"},
    {"statusCode": 200, "headers": {"bad name": "x"}, "body": "space in a name"},
    {"statusCode": 200, "headers": {"x-a": "line\r\nbreak"}, "body": "CRLF in a value"},
    {"statusCode": 200, "headers": {"": "x"}, "body": "empty name"},
    {"statusCode": 200, "headers": [("a", "b")], "body": "headers as a list"},
    {"statusCode": 200, "body": decimal.Decimal("1.5")},
    {"statusCode": 200, "body": 5},
    {"statusCode": 200, "body": "x", "cookies": ["a=1"]},
    {"statusCode": 200, "body": "eA==", "isBase64Encoded": True},
    {"statusCode": 200, "body": "x", "other": object()},
    {"no": "statusCode"},
    "just a string",
    ["a", 1],
    None,
]


def general(result: object) -> tuple:
    try:
        response = map_result_v2(marshal(result))
    except LambdaResponseError as exc:
        return ("refused", type(exc))
    return (response.status, response.headers, response.body)


@pytest.mark.parametrize("result", RESULTS, ids=range(len(RESULTS)))
def test_the_one_pass_mapping_answers_what_the_general_path_answers(result):
    fast = _simple_v2(result)
    if fast is not None:
        assert (fast.status, fast.headers, fast.body) == general(result)


def test_the_common_objects_take_the_one_pass_mapping():
    taken = [result for result in RESULTS if _simple_v2(result) is not None]
    assert taken == RESULTS[:7]
