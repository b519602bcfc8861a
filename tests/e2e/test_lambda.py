"""The in-process Lambda kind (`lambda:`) end to end: a real server, real clients.

Functions in tests/faas_apps/ are written for Lambda and run unmodified: a
FastAPI app behind Mangum, aws-lambda-powertools resolvers, and probes that
report their event, context and environment or fail on purpose.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from conftest import REPO, RawClient, wait_until
from test_aws_events import (
    V1_EXAMPLES,
    V1_NULLABLE,
    V1_OPTIONAL,
    V2_EXAMPLES,
    V2_OPTIONAL,
    shape_errors,
)

APPS = REPO / "tests" / "faas_apps"
BINARY = bytes(range(256)) * 4


def site(tmp_path: Path) -> Path:
    """A copy of the test apps for one server, so edits and caches stay in the test's folder."""
    folder = tmp_path / "site"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def set_cookies(response: requests.Response) -> list[str]:
    """Every Set-Cookie header line as sent (requests would merge them into one string)."""
    return response.raw.headers.getlist("Set-Cookie")


# --- client libraries: Mangum (FastAPI) and aws-lambda-powertools --------------------------


@pytest.fixture
def apps(start_server, tmp_path):
    config = """
/asgi = lambda:asgi_app.py:handler
/pt2  = lambda:powertools_app.py:http_handler
/pt1  = lambda:powertools_app.py:rest_handler format=1.0
"""
    return start_server(config, folder=site(tmp_path))


PREFIXES = ["/asgi", "/pt2", "/pt1"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_path_and_repeated_query_routing(apps, prefix):
    response = requests.get(f"{apps.url}{prefix}/items/42?tag=a&tag=b&q=hello%20world", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert (body["id"], body["tags"], body["q"]) == ("42", ["a", "b"], "hello world")


def test_asgi_app_sees_request_cookies(apps):
    response = requests.get(
        f"{apps.url}/asgi/items/7", headers={"Cookie": "s=1; t=two"}, timeout=10
    )
    assert response.json()["cookies"] == {"s": "1", "t": "two"}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_json_body_and_201(apps, prefix):
    data = {"x": [1, 2], "text": "café ✓", "nested": {"ok": True}}
    response = requests.post(f"{apps.url}{prefix}/json", json=data, timeout=10)
    assert response.status_code == 201
    assert response.json() == {"got": data}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_binary_body_round_trips_byte_for_byte(apps, prefix):
    response = requests.post(
        f"{apps.url}{prefix}/binary",
        data=BINARY,
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.content == BINARY


@pytest.mark.parametrize("prefix", PREFIXES)
def test_several_cookies_are_separate_set_cookie_headers(apps, prefix):
    response = requests.get(f"{apps.url}{prefix}/cookies", timeout=10)
    assert response.status_code == 200
    cookies = set_cookies(response)
    assert [c.split(";")[0] for c in cookies] == ["a=1", "b=2", "c=3"], cookies
    assert not any(re.search(r",\s*[abc]=", c) for c in cookies), "merged Set-Cookie values"
    assert response.cookies.get("a") == "1" and response.cookies.get("c") == "3"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_non_200_statuses(apps, prefix):
    teapot = requests.get(f"{apps.url}{prefix}/teapot", timeout=10)
    assert (teapot.status_code, teapot.json()) == (418, {"detail": "short and stout"})
    missing = requests.get(f"{apps.url}{prefix}/nowhere", timeout=10)
    assert missing.status_code == 404


def test_asgi_app_after_a_function_that_used_asyncio_run_on_the_same_thread(start_server, tmp_path):
    config = """
/asgi = lambda:asgi_app.py:handler
/arun = lambda:probe.py:async_run
"""
    server = start_server(config, "--threads", "1", "--max-threads", "1", folder=site(tmp_path))
    for _ in range(3):
        assert requests.get(f"{server.url}/arun", timeout=10).json() == "ran"
        assert requests.get(f"{server.url}/asgi/items/1", timeout=10).json()["id"] == "1"


def test_fast_repeats_run_inline_and_functions_still_run_event_loops_of_their_own(
    start_server, tmp_path
):
    folder = site(tmp_path)
    config = """
/where = lambda:probe.py:where
/loops = lambda:probe.py:own_loops dispatch=inline
/asgi  = lambda:asgi_app.py:handler dispatch=inline
"""
    server = start_server(config, folder=folder)
    cwd = str(folder.resolve())
    with requests.Session() as session:

        def where() -> dict:
            return session.get(f"{server.url}/where", timeout=10).json()

        assert where() == {"main_thread": False, "cwd": cwd}  # a request not seen yet: the pool
        # an exact repeat of a request answered fast runs on the loop thread: no thread hop
        assert wait_until(lambda: where()["main_thread"], what="a call on the loop thread")
        assert where() == {"main_thread": True, "cwd": cwd}
        for _ in range(3):  # on the loop thread, the server's running loop is hidden
            loops = session.get(f"{server.url}/loops", timeout=10).json()
            assert loops == {"main_thread": True, "cwd": cwd, "get_event_loop": "ran", "run": "ran"}
            item = session.get(f"{server.url}/asgi/items/5?tag=x", timeout=10)  # Mangum
            assert (item.status_code, item.json()["id"], item.json()["tags"]) == (200, "5", ["x"])
    assert "Traceback" not in server.errors()


def test_an_inline_call_never_waits_on_the_loop_thread_for_its_folder(start_server, tmp_path):
    folder = site(tmp_path)
    other = folder / "other"
    other.mkdir()
    shutil.copy(folder / "probe.py", other / "probe.py")
    config = """
/sleep = lambda:failing.py:sleepy timeout=1
/fast  = lambda:failing.py:fast dispatch=inline
/other = lambda:other/probe.py:where dispatch=inline
"""
    server = start_server(config, "--threads", "2", "--max-threads", "4", folder=folder)
    here = {"main_thread": True, "cwd": str(other.resolve())}
    assert requests.get(f"{server.url}/other", timeout=10).json() == here
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(timed_get, f"{server.url}/sleep")
        # the sleeping call holds the working directory (its folder) until its timeout
        wait_until(lambda: "sleepy invocation" in server.stdout.read_text(), what="the call")
        waiting = pool.submit(requests.get, f"{server.url}/other", timeout=10)
        # meanwhile the loop thread serves: a call in the folder already entered runs inline
        assert requests.get(f"{server.url}/fast", timeout=10).text == "fast"
        moved = waiting.result().json()
        assert slow.result()[0].status_code == 500
    # the call that would have waited for its folder went to the pool, and got its folder there
    assert moved == {**here, "main_thread": False}


# --- the event, end to end ---------------------------------------------------------------


@pytest.fixture
def echo(start_server, tmp_path):
    config = """
/ev2 = lambda:probe.py:event_v2
/ev1 = lambda:probe.py:event_v1 format=1.0
"""
    return start_server(config, folder=site(tmp_path))


FULL_REQUEST = (
    b"POST %s/my/path?parameter1=value1&parameter1=value2&parameter2=value HTTP/1.1\r\n"
    b"Host: api.example.com\r\n"
    b"User-Agent: probe/1\r\n"
    b"Content-Type: text/plain\r\n"
    b"Header2: value1\r\n"
    b"Header2: value2\r\n"
    b"Cookie: cookie1=a; cookie2=b\r\n"
    b"Content-Length: 17\r\n"
    b"\r\n"
    b"Hello from Lambda"
)


def raw_event(server, request: bytes) -> dict:
    client = RawClient(server.port)
    try:
        client.send(request)
        response = client.read_response()
    finally:
        client.close()
    assert response.status == 200, response
    assert response.header("content-type") == "application/json"
    return json.loads(response.body)


def test_v2_event_shape_and_values_end_to_end(echo):
    event = raw_event(echo, FULL_REQUEST % b"/ev2")
    assert shape_errors(event, V2_EXAMPLES, V2_OPTIONAL, set()) == []
    assert event["rawPath"] == "/ev2/my/path"
    assert event["rawQueryString"] == "parameter1=value1&parameter1=value2&parameter2=value"
    assert event["queryStringParameters"] == {"parameter1": "value1,value2", "parameter2": "value"}
    assert event["cookies"] == ["cookie1=a", "cookie2=b"]
    assert event["headers"]["header2"] == "value1,value2"
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert (event["body"], event["isBase64Encoded"]) == ("Hello from Lambda", False)
    http = event["requestContext"]["http"]
    assert http == {
        "method": "POST",
        "path": "/ev2/my/path",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "probe/1",
    }
    assert event["requestContext"]["domainName"] == "api.example.com"
    assert event["requestContext"]["domainPrefix"] == "api"
    assert abs(event["requestContext"]["timeEpoch"] - time.time() * 1000) < 60_000

    bare = raw_event(echo, b"GET /ev2 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert shape_errors(bare, V2_EXAMPLES, V2_OPTIONAL, set()) == []
    assert not {"cookies", "queryStringParameters", "body"} & bare.keys()
    assert bare["requestContext"]["requestId"] != event["requestContext"]["requestId"]


def test_v1_event_shape_and_values_end_to_end(echo):
    event = raw_event(echo, FULL_REQUEST % b"/ev1")
    assert shape_errors(event, V1_EXAMPLES, V1_OPTIONAL, V1_NULLABLE) == []
    assert (event["resource"], event["path"], event["httpMethod"]) == (
        "/{proxy+}",
        "/ev1/my/path",
        "POST",
    )
    assert event["pathParameters"] == {"proxy": "ev1/my/path"}
    assert event["multiValueHeaders"]["Header2"] == ["value1", "value2"]
    assert event["headers"]["Header2"] == "value2"
    assert event["headers"]["Cookie"] == "cookie1=a; cookie2=b"
    assert event["queryStringParameters"] == {"parameter1": "value2", "parameter2": "value"}
    assert event["multiValueQueryStringParameters"] == {
        "parameter1": ["value1", "value2"],
        "parameter2": ["value"],
    }
    assert (event["body"], event["isBase64Encoded"]) == ("Hello from Lambda", False)

    bare = raw_event(echo, b"GET /ev1 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert shape_errors(bare, V1_EXAMPLES, V1_OPTIONAL, V1_NULLABLE) == []
    assert bare["body"] is None and bare["queryStringParameters"] is None


@pytest.mark.parametrize("prefix", ["/ev2", "/ev1"])
def test_binary_body_arrives_base64_encoded(echo, prefix):
    response = requests.post(
        f"{echo.url}{prefix}/bin",
        data=BINARY,
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    event = response.json()
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == BINARY


# --- context and environment ---------------------------------------------------------------


def test_context_and_lambda_environment(start_server, tmp_path):
    folder = site(tmp_path)
    config = (
        "/ctx = lambda:probe.py:context_info name=probe-fn memory=256 timeout=2 env.SECRET=s1\n"
    )
    server = start_server(config, folder=folder, env={"AWS_REGION": "eu-west-1"})
    with requests.Session() as session:
        infos = [session.get(f"{server.url}/ctx", timeout=10).json() for _ in range(20)]
    first = infos[0]
    assert len({info["aws_request_id"] for info in infos}) == 20
    assert all(re.fullmatch(r"[0-9a-f-]{36}", info["aws_request_id"]) for info in infos)
    assert first["function_name"] == "probe-fn"
    assert first["function_version"] == "$LATEST"
    assert first["memory_limit_in_mb"] == "256"  # a string, as the runtime reads it from env
    assert (
        first["invoked_function_arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:probe-fn"
    )
    assert first["log_group_name"] == "/aws/lambda/probe-fn"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", first["log_stream_name"])
    assert first["identity"] is None and first["client_context"] is None
    assert all(0 < info["remaining_ms"] < 2000 for info in infos)

    environ = first["environ"]
    assert environ["AWS_LAMBDA_FUNCTION_NAME"] == "probe-fn"
    assert environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert environ["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert environ["AWS_LAMBDA_LOG_GROUP_NAME"] == first["log_group_name"]
    assert environ["AWS_LAMBDA_LOG_STREAM_NAME"] == first["log_stream_name"]
    assert environ["AWS_REGION"] == environ["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert re.fullmatch(r"AWS_Lambda_python3\.\d+", environ["AWS_EXECUTION_ENV"])
    assert environ["_HANDLER"] == "probe.context_info"
    assert Path(environ["LAMBDA_TASK_ROOT"]).resolve() == folder.resolve()
    assert environ["TZ"] == ":UTC"
    assert first["secret"] == "s1"


def test_two_functions_never_see_each_others_env(start_server, tmp_path):
    folder = site(tmp_path)
    (folder / "plain.py").write_text(
        "import os\n\ndef handle_request(request):\n    return os.environ.get('SECRET', 'unset')\n"
    )
    config = """
/env-a = lambda:probe.py:env_twice name=fa env.SECRET=alpha env.ONLY_A=1
/env-b = lambda:probe.py:env_twice name=fb env.SECRET=beta env.ONLY_B=1
/env-none = lambda:probe.py:env_twice name=fn
/plain = plain.py
"""
    server = start_server(config, "--threads", "4", "--max-threads", "8", folder=folder)
    expected = {
        "/env-a": {"first": "alpha", "second": "alpha", "only_a": True, "only_b": False},
        "/env-b": {"first": "beta", "second": "beta", "only_a": False, "only_b": True},
        "/env-none": {"first": None, "second": None, "only_a": False, "only_b": False},
    }
    for want in expected.values():
        want["in_copy"] = want["first"]

    def client(index: int) -> list[tuple[str, dict]]:
        routes = list(expected)
        seen = []
        with requests.Session() as session:
            for i in range(30):
                route = routes[(index + i) % len(routes)]
                seen.append((route, session.get(server.url + route, timeout=10).json()))
        return seen

    with ThreadPoolExecutor(8) as pool:
        results = [item for chunk in pool.map(client, range(8)) for item in chunk]
    assert len(results) == 240
    wrong = [(route, got) for route, got in results if got != expected[route]]
    assert wrong == []
    # nor does the process (a Python handler in the same server) see them
    assert requests.get(f"{server.url}/plain", timeout=10).text == "unset"


# --- errors, timeouts, memory ----------------------------------------------------------------


def test_function_errors_get_api_gateway_statuses_and_are_logged(start_server, tmp_path):
    config = """
/boom2      = lambda:failing.py:boom
/boom1      = lambda:failing.py:boom format=1.0
/malformed1 = lambda:failing.py:malformed format=1.0
/string1    = lambda:failing.py:not_an_object format=1.0
/string2    = lambda:failing.py:not_an_object
/own1       = lambda:failing.py:own_timeout format=1.0
"""
    server = start_server(config, folder=site(tmp_path))
    boom2 = requests.get(f"{server.url}/boom2", timeout=10)
    assert (boom2.status_code, boom2.json()) == (500, {"message": "Internal Server Error"})
    assert boom2.headers["Content-Type"] == "application/json"
    boom1 = requests.get(f"{server.url}/boom1", timeout=10)
    assert (boom1.status_code, boom1.json()) == (502, {"message": "Internal server error"})
    logged = server.wait_for_log(r'"errorType": "ValueError"', count=2)
    record = json.loads(re.search(r"\{\"errorMessage\".*\}", logged).group(0))
    assert record["errorMessage"] == "kaboom" and record["errorType"] == "ValueError"
    assert re.fullmatch(r"[0-9a-f-]{36}", record["requestId"])
    assert any("raise ValueError" in line for line in record["stackTrace"])

    own = requests.get(f"{server.url}/own1", timeout=10)  # not the Lambda timeout: an error
    assert (own.status_code, own.json()) == (502, {"message": "Internal server error"})
    server.wait_for_log(r'"errorType": "TimeoutError"')

    for route in ("/malformed1", "/string1"):
        response = requests.get(server.url + route, timeout=10)
        assert (response.status_code, response.json()) == (
            502,
            {"message": "Internal server error"},
        )
    server.wait_for_log(r"malformed Lambda proxy response.*unknown keys \['bogus'\]")
    # an HTTP API takes any JSON value as a 200 body
    string2 = requests.get(f"{server.url}/string2", timeout=10)
    assert (string2.status_code, string2.text) == (200, '"just a string"')
    assert string2.headers["Content-Type"] == "application/json"


def timed_get(url: str) -> tuple[requests.Response, float]:
    start = time.monotonic()
    response = requests.get(url, timeout=15)
    return response, time.monotonic() - start


def test_timeout_answers_and_the_server_keeps_serving(start_server, tmp_path):
    config = """
/sleep-v2 = lambda:failing.py:sleepy timeout=1
/sleep-v1 = lambda:failing.py:sleepy timeout=1 format=1.0
/fast     = lambda:failing.py:fast
"""
    server = start_server(config, "--threads", "1", "--max-threads", "2", folder=site(tmp_path))
    assert requests.get(f"{server.url}/fast", timeout=10).text == "fast"  # loaded
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(timed_get, f"{server.url}/sleep-v2")
        server.wait_for_log(r"loaded lambda:failing.py:sleepy")
        during = requests.get(f"{server.url}/fast", timeout=10)
        assert not slow.done()
        response, elapsed = slow.result()
    assert during.text == "fast"
    assert (response.status_code, response.json()) == (500, {"message": "Internal Server Error"})
    assert 0.9 < elapsed < 3, elapsed
    # the timeout line names the invocation by the aws_request_id the function was given
    log = server.wait_for_log(r"failing: [0-9a-f-]{36}: Task timed out after 1\.00 seconds")
    (timed_out,) = re.findall(r"failing: ([0-9a-f-]{36}): Task timed out", log)
    wait_until(lambda: f"sleepy invocation {timed_out}" in server.stdout.read_text(), 5)

    response, elapsed = timed_get(f"{server.url}/sleep-v1")
    assert (response.status_code, response.json()) == (502, {"message": "Internal server error"})
    assert 0.9 < elapsed < 3, elapsed
    # both sleeping threads were interrupted: the pool of 2 still has room for this
    assert requests.get(f"{server.url}/fast", timeout=10).text == "fast"


def test_infinite_python_loop_is_interrupted_and_frees_its_thread(start_server, tmp_path):
    config = """
/spin = lambda:failing.py:spin timeout=1
/fast = lambda:failing.py:fast
"""
    server = start_server(config, "--threads", "1", "--max-threads", "2", folder=site(tmp_path))
    # four loops in a row on a pool of at most two threads: each must have been stopped
    for _ in range(4):
        response, elapsed = timed_get(f"{server.url}/spin")
        assert response.status_code == 500 and elapsed < 3
        fast = requests.get(f"{server.url}/fast", timeout=10)  # needs a free thread
        assert (fast.status_code, fast.text) == (200, "fast")
    assert server.errors().count("Task timed out after 1.00 seconds") == 4
    assert "expired before it started" not in server.errors()


def test_memory_limit_is_reported_and_enforced(start_server, tmp_path):
    config = """
/hog = lambda:failing.py:hog memory=128
/ctx = lambda:probe.py:context_info memory=1024
"""
    server = start_server(config, folder=site(tmp_path))
    assert requests.get(f"{server.url}/ctx", timeout=10).json()["memory_limit_in_mb"] == "1024"
    response = requests.get(f"{server.url}/hog", timeout=30)
    assert (response.status_code, response.json()) == (500, {"message": "Internal Server Error"})
    server.wait_for_log(r"Runtime exited: memory grew by \d+ MB, over memory=128")


# --- init once per load, hot reload ----------------------------------------------------------


def test_module_code_runs_once_per_load_and_again_on_reload(start_server, tmp_path):
    folder = site(tmp_path)
    init_log = tmp_path / "inits.log"
    server = start_server(
        f"/ctx = lambda:probe.py:context_info env.INIT_LOG={init_log}\n", folder=folder
    )
    with requests.Session() as session:
        infos = [session.get(f"{server.url}/ctx", timeout=10).json() for _ in range(5)]
        assert [info["calls"] for info in infos] == [1, 2, 3, 4, 5]
        assert len({info["init"] for info in infos}) == 1
        assert init_log.read_text().split() == [infos[0]["init"]]

        with (folder / "probe.py").open("a") as source:
            source.write("\n# edited\n")
        fresh = wait_until(
            lambda: (
                (info := session.get(f"{server.url}/ctx", timeout=10).json())["init"]
                != infos[0]["init"]
                and info
            ),
            what="the reloaded function",
        )
    assert fresh["calls"] == 1
    assert init_log.read_text().split() == [infos[0]["init"], fresh["init"]]


LAMBDA_VERSION = """
import json

VERSION = {n}


def handler(event, context):
    return {{"statusCode": 200, "body": json.dumps({{"module": VERSION, "code": {n}}})}}
"""


def reload_under_load(server, path: str, source: Path, template: str, versions: int = 10):
    """Rewrite `source` in place `versions` times while clients keep requesting `path`.

    Returns every (status, body) the load clients got; each version is waited
    for (a fresh request answers with it) before the next edit.
    """
    url = server.url + path
    stop = threading.Event()
    limit = 20_000  # a bound on each client, far above what the edits take

    def client() -> list[tuple[int, bytes]]:
        got = []
        with requests.Session() as session:
            while not stop.is_set() and len(got) < limit:
                response = session.get(url, timeout=10)
                got.append((response.status_code, response.content))
        return got

    with requests.Session() as probe:

        def answers(n: int) -> bool:
            return probe.get(url, timeout=10).json() == {"module": n, "code": n}

        wait_until(lambda: answers(0), what="version 0")
        with ThreadPoolExecutor(4) as pool:
            clients = [pool.submit(client) for _ in range(4)]
            for n in range(1, versions + 1):
                with source.open("r+") as out:  # edited in place: same inode, truncated
                    out.truncate(0)
                    out.write(template.format(n=n))
                wait_until(lambda n=n: answers(n), timeout=15, what=f"version {n}")
            stop.set()
            results = [c.result() for c in clients]
    assert all(len(r) < limit for r in results), "a client stopped before the edits were done"
    return [item for r in results for item in r]


def check_reload_results(results: list[tuple[int, bytes]], versions: int) -> None:
    failed = [(status, body) for status, body in results if status != 200]
    assert failed == []
    seen = set()
    for _, body in results:
        data = json.loads(body)
        assert data["module"] == data["code"], data  # one version, never a mix
        seen.add(data["code"])
    assert seen == set(range(versions + 1))  # the load ran across every edit


def test_lambda_hot_reload_under_load_loses_no_request(start_server, tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    source = folder / "fn.py"
    source.write_text(LAMBDA_VERSION.format(n=0))
    server = start_server("/fn = lambda:fn.py:handler\n", "--threads", "4", folder=folder)
    results = reload_under_load(server, "/fn", source, LAMBDA_VERSION)
    check_reload_results(results, 10)
    assert len(results) > 100
    assert "Internal Server Error" not in server.errors()
