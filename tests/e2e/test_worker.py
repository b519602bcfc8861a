"""The Cloudflare Python Workers kind (`worker:`) end to end: a real server, real clients.

The workers in tests/faas_apps/ are written for Cloudflare (`from workers
import ...`) in both styles: `class Default(WorkerEntrypoint)` and the older
top-level `on_fetch(request, env, ctx)`.
"""

from __future__ import annotations

import http.client

import pytest
import requests
from conftest import wait_until
from test_lambda import BINARY, check_reload_results, reload_under_load, set_cookies, site


@pytest.fixture
def workers(start_server, tmp_path):
    config = """
/wc = worker:worker_class.py env.NAME=classy env.GREETING=hello
/wf = worker:worker_func.py env.NAME=funky env.GREETING=hi
"""
    return start_server(config, folder=site(tmp_path))


def test_entrypoint_class_json_env_and_absolute_url(workers):
    response = requests.get(f"{workers.url}/wc/json?x=1", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "name": "classy",
        "greeting": "hello",
        "method": "GET",
        "url": f"http://127.0.0.1:{workers.port}/wc/json?x=1",
    }


def test_on_fetch_json_env_and_headers(workers):
    response = requests.post(f"{workers.url}/wf/json", json={"a": [1, "b"]}, timeout=10)
    assert response.json() == {
        "name": "funky",
        "greeting": "hi",
        "method": "POST",
        "got": {"a": [1, "b"]},
    }
    assert response.headers["x-style"] == "on_fetch"


def test_request_body_readers(workers):
    data = {"n": 5, "text": "café ✓"}
    echoed = requests.post(f"{workers.url}/wc/echo-json", json=data, timeout=10)
    assert (echoed.status_code, echoed.json()) == (201, {"got": data})

    text = requests.post(f"{workers.url}/wc/text", data="héllo".encode(), timeout=10)
    assert text.text == "HÉLLO"
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8"

    raw = requests.post(
        f"{workers.url}/wc/bytes",
        data=BINARY,
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    assert raw.content == BINARY
    assert raw.headers["Content-Type"] == "application/octet-stream"


def test_response_headers_from_a_list_of_pairs_and_a_dict(workers):
    listed = requests.get(f"{workers.url}/wc/headers-list", timeout=10)
    assert listed.headers["x-multi"] == "a, b"  # the Fetch API's Headers joins them
    assert set_cookies(listed) == ["a=1; Path=/", "b=2; Path=/"]  # Set-Cookie never joined
    assert listed.text == "list"
    assert listed.headers["Content-Type"] == "text/plain;charset=UTF-8"

    as_dict = requests.get(f"{workers.url}/wc/headers-dict", timeout=10)
    assert (as_dict.headers["x-one"], as_dict.headers["x-two"]) == ("1", "2")


def test_request_headers_get_and_iteration(workers):
    response = requests.get(
        f"{workers.url}/wc/request-headers", headers={"X-Test": "yes"}, timeout=10
    )
    got = response.json()
    assert got["x_test"] == "yes"
    assert {"host", "x-test", "user-agent", "cf-connecting-ip"} <= set(got["names"])


def reason_phrase(server, path: str) -> tuple[int, str, bytes]:
    """Status, reason phrase and body as they are on the wire."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.reason, response.read()
    finally:
        connection.close()


def test_status_text_is_the_reason_phrase_on_the_wire(workers):
    assert reason_phrase(workers, "/wc/status") == (201, "Made It Here", b"made")
    assert reason_phrase(workers, "/wf/status") == (410, "Long Gone", b"gone")
    assert reason_phrase(workers, "/wc/missing") == (404, "Not Found", b"no such page")


def test_redirects(workers):
    away = requests.get(f"{workers.url}/wc/redirect", allow_redirects=False, timeout=10)
    assert away.status_code == 301
    assert away.headers["Location"] == "https://example.com/elsewhere"
    assert away.content == b""

    followed = requests.get(f"{workers.url}/wf/redirect", timeout=10)
    assert [r.status_code for r in followed.history] == [307]
    assert followed.json()["name"] == "funky"


@pytest.mark.parametrize("prefix", ["/wc", "/wf"])
def test_wait_until_runs_after_the_response_was_sent(workers, tmp_path, prefix):
    """The waitUntil task blocks until this test, holding the response, lets it go on.

    Were the server to finish waitUntil work before sending the response, the
    request would hang: the task waits for a file created only after the
    response arrived.
    """
    release, marker = tmp_path / f"release{prefix[1:]}", tmp_path / f"marker{prefix[1:]}"
    response = requests.get(
        f"{workers.url}{prefix}/wait", params={"release": release, "marker": marker}, timeout=5
    )
    assert response.text == "sent"
    assert not marker.exists()
    release.touch()
    wait_until(marker.exists, what="the waitUntil task's marker")
    assert marker.read_text() == "done"


WORKER_VERSION = """
import json

from workers import Response

VERSION = {n}


async def on_fetch(request):
    return Response(json.dumps({{"module": VERSION, "code": {n}}}))
"""


def test_worker_hot_reload_under_load_loses_no_request(start_server, tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    source = folder / "live.py"
    source.write_text(WORKER_VERSION.format(n=0))
    server = start_server("/live = worker:live.py\n", folder=folder)
    results = reload_under_load(server, "/live", source, WORKER_VERSION)
    check_reload_results(results, 10)
    assert len(results) > 100
    assert "raised" not in server.errors()
