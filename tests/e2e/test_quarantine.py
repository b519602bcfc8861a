"""A native library that kills its worker is quarantined; the other routes keep serving."""

from __future__ import annotations

import re

import pytest
import requests
from conftest import build_library, wait_until


def _get(url: str, **headers: str) -> requests.Response | None:
    try:
        return requests.get(url, headers=headers, timeout=5)
    except requests.ConnectionError:
        return None  # the worker died under this request


def test_a_crashing_library_is_quarantined_and_the_rest_keeps_serving(
    start_server, examples_built, tmp_path
):
    crash = build_library("crash.c", tmp_path / "libcrash.so")
    sample = examples_built / "libsample.so"
    server = start_server(f"/crash = {crash}\n/ = {sample}\n")
    assert _get(server.url + "/crash", **{"x-crash": "1"}) is None
    log = server.wait_for_log(r"quarantined for 5s \(crash 1 in a row\)")
    assert re.search(rf"killed by SIGABRT inside {re.escape(str(crash))}: .*routes \(/crash\)", log)
    server.wait_for_log(r"worker 0 started", count=2)
    # the quarantined route answers at once, without calling the library again
    [refused] = wait_until(
        lambda: [r] if (r := _get(server.url + "/crash", **{"x-crash": "1"})) is not None else None,
        what="an answer from the new worker",
    )  # (a list: a 503 response is falsy)
    assert refused.status_code == 503 and 1 <= int(refused.headers["Retry-After"]) <= 5
    for _ in range(20):
        assert _get(server.url + "/").status_code == 200
    assert server.errors().count("started (pid") == 2  # no second crash
    # once it expires the library is called again; a second crash doubles the quarantine
    wait_until(
        lambda: (r := _get(server.url + "/crash")) is not None and r.status_code == 200,
        timeout=15,
        what="the quarantine to end",
    )
    assert _get(server.url + "/crash", **{"x-crash": "1"}) is None
    server.wait_for_log(r"quarantined for 10s \(crash 2 in a row\)")


@pytest.mark.parametrize("workers", ["2"])
def test_every_worker_learns_of_the_quarantine(start_server, examples_built, tmp_path, workers):
    crash = build_library("crash.c", tmp_path / "libcrash.so")
    server = start_server(f"/crash = {crash}\n", "--workers", workers)
    assert _get(server.url + "/crash", **{"x-crash": "1"}) is None
    server.wait_for_log(r"quarantined for 5s")
    server.wait_for_log(r"started \(pid", count=3)
    # whichever worker takes them, the crashing requests are refused, not run
    answers = [_get(server.url + "/crash", **{"x-crash": "1"}) for _ in range(10)]
    assert all(a is not None and a.status_code == 503 for a in answers)
    assert server.errors().count("started (pid") == 3
