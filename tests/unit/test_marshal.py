"""The runtime's JSON marshalling before API Gateway's mapping (kinds/aws/responses.py)."""

from __future__ import annotations

from decimal import Decimal
from http import HTTPStatus

import pytest

from flexilib.kinds.aws.responses import (
    LambdaResponseError,
    map_result_v1,
    map_result_v2,
    marshal,
)


@pytest.mark.parametrize("mapper", [map_result_v1, map_result_v2])
def test_http_status_enum_is_a_status_code(mapper):
    response = mapper(marshal({"statusCode": HTTPStatus.UNPROCESSABLE_ENTITY, "body": "x"}))
    assert response.status == 422


def test_decimals_tuples_and_unmarshallable_values():
    assert marshal({"a": Decimal("2"), "b": Decimal("0.5"), "c": (1, 2)}) == {
        "a": 2,
        "b": 0.5,
        "c": [1, 2],
    }
    with pytest.raises(LambdaResponseError, match="MarshalError"):
        marshal({"when": object()})
    assert marshal(b'{"raw": true}') == b'{"raw": true}'
