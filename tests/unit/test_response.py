"""`flexilib.response.unavailable`: the one 503 a busy or quarantined route answers."""

import pytest

from flexilib.response import unavailable


@pytest.mark.parametrize(("seconds", "header"), [(0.2, "1"), (1, "1"), (4.01, "5"), (300, "300")])
def test_retry_after_is_whole_seconds_rounded_up(seconds: float, header: str) -> None:
    busy = unavailable(b"busy\n", seconds)
    assert (busy.status, busy.body) == (503, b"busy\n")
    assert busy.headers == [("Retry-After", header)]


def test_a_deadline_already_past_still_asks_for_a_second() -> None:
    assert unavailable(b"", -3).headers == [("Retry-After", "1")]
