"""`lambda-runtime:` end to end: a real server starting real runtimes over the Runtime API.

The function runtimes are the official Python runtime interface client
(`awslambdaric`, started by tests/lambda_runtime/bootstrap) and a hand-written
runtime (tests/lambda_runtime/probe) that checks the API's headers and
statuses itself. Each test copies them into its own folder, so edits and
`__pycache__` stay there.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from conftest import REPO, wait_until

from flexilib.kinds.aws.runtime_api import Outcome
from flexilib.kinds.aws.runtime_pool import RuntimePool

HERE = REPO / "tests" / "lambda_runtime"
V2_ERROR = {"message": "Internal Server Error"}
V1_ERROR = {"message": "Internal server error"}


@pytest.fixture
def function_dir(tmp_path) -> Path:
    """The awslambdaric function package (bootstrap + function.py) in a folder of its own."""
    folder = tmp_path / "fn"
    folder.mkdir()
    for name in ("bootstrap", "function.py"):
        shutil.copy2(HERE / name, folder / name)
    return folder


@pytest.fixture
def probe_dir(tmp_path) -> Path:
    folder = tmp_path / "probe"
    shutil.copytree(HERE / "probe", folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def gone(pid: int) -> bool:
    """True once `pid` no longer exists: exited *and* reaped (a zombie still answers kill 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def get_json(server, path: str, **kwargs):
    response = requests.get(server.url + path, timeout=15, **kwargs)
    return response, response.json()


def test_json_response_context_and_environment(start_server, function_dir):
    server = start_server(
        f"/ = lambda-runtime:{function_dir}/bootstrap timeout=2 memory=256 env.STAGE=test\n"
    )
    response, body = get_json(server, "/hello")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert body["version"] == "one" and body["method"] == "GET" and body["path"] == "/hello"
    assert body["pid"] == body["init_pid"] != server.process.pid

    # a bare string is a 200 application/json body, as an HTTP API maps it
    response = requests.get(server.url + "/plain", timeout=15)
    assert (response.status_code, response.text) == (200, '"just a string"')

    # client context (the Invoke API's base64 header) arrives as context.client_context
    client_context = base64.b64encode(json.dumps({"custom": {"k": "v"}}, indent=1).encode())
    _, body = get_json(server, "/context", headers={"X-Amz-Client-Context": client_context})
    assert body["client_custom"] == {"k": "v"}
    assert body["function_name"] == "fn" and body["function_version"] == "$LATEST"
    assert body["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:fn"
    assert body["memory_limit_in_mb"] == "256" and body["log_group_name"] == "/aws/lambda/fn"
    assert re.fullmatch(
        r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", body["trace"]
    )
    env = body["env"]
    assert env["STAGE"] == "test" and env["_HANDLER"] == "function.handler"
    assert (
        env["AWS_LAMBDA_FUNCTION_NAME"] == "fn" and env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    )
    assert env["LAMBDA_TASK_ROOT"] == body["cwd"] == str(function_dir)
    host, port = env["AWS_LAMBDA_RUNTIME_API"].split(":")
    assert host == "127.0.0.1" and int(port) != server.port
    _, again = get_json(server, "/context")
    assert again["client_custom"] is None and again["aws_request_id"] != body["aws_request_id"]


def test_function_error_is_answered_and_logged(start_server, function_dir):
    server = start_server(
        f"/v1 = lambda-runtime:{function_dir}/bootstrap format=1.0\n"
        f"/ = lambda-runtime:{function_dir}/bootstrap\n"
    )
    response, body = get_json(server, "/error")
    assert (response.status_code, body) == (500, V2_ERROR)
    response, body = get_json(server, "/v1/error")
    assert (response.status_code, body) == (502, V1_ERROR)
    log = server.wait_for_log(r"ValueError: boom from the function", count=2)
    assert re.search(r"fn\[\d+\]: \[ERROR\] ValueError: boom from the function", log)  # its output
    # the runtime survives a function error, and format 1.0 gets the REST API event
    response, body = get_json(server, "/v1/hello")
    assert response.status_code == 200 and body["method"] == "GET"


def test_timeout_answers_and_replaces_the_runtime(start_server, function_dir):
    server = start_server(f"/ = lambda-runtime:{function_dir}/bootstrap timeout=1\n")
    _, before = get_json(server, "/hello")
    response, body = get_json(server, "/sleep?s=30")
    assert (response.status_code, body) == (500, V2_ERROR)
    server.wait_for_log(r"Task timed out after 1\.00 seconds")
    server.wait_for_log(rf"runtime {before['pid']} stopped \(timed out\)")
    wait_until(lambda: gone(before["pid"]), what="the timed-out runtime reaped")
    response, after = get_json(server, "/hello")
    assert response.status_code == 200 and after["pid"] != before["pid"]


def test_remaining_time_counts_down_below_the_timeout(start_server, function_dir):
    server = start_server(f"/ = lambda-runtime:{function_dir}/bootstrap timeout=2\n")
    response, body = get_json(server, "/remaining")
    assert response.status_code == 200
    assert 0 < body["second"] < body["first"] <= 2000


def test_concurrent_invocations_run_in_parallel(start_server, function_dir, tmp_path):
    server = start_server(f"/ = lambda-runtime:{function_dir}/bootstrap timeout=10 concurrency=4\n")
    marks = tmp_path / "marks"
    marks.mkdir()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: get_json(server, f"/barrier?n=4&dir={marks}"), range(4)))
    bodies = [body for _, body in results]
    assert all(response.status_code == 200 for response, _ in results)
    assert all(body["met"] for body in bodies)  # all four were running at the same time
    assert len({body["pid"] for body in bodies}) == 4
    assert max(b["start"] for b in bodies) < min(b["end"] for b in bodies)  # intervals overlap


def test_concurrency_limit_holds(start_server, function_dir, tmp_path):
    server = start_server(f"/ = lambda-runtime:{function_dir}/bootstrap timeout=10 concurrency=2\n")
    marks = tmp_path / "marks"
    marks.mkdir()
    with ThreadPoolExecutor(3) as pool:
        results = list(
            pool.map(lambda _: get_json(server, f"/barrier?n=3&wait=1&dir={marks}"), range(3))
        )
    bodies = [body for _, body in results]
    assert all(response.status_code == 200 for response, _ in results)
    # two ran at once, waiting for a third in vain; the third started once one of them ended
    # (with no limit, all three would meet and their intervals overlap)
    assert len({body["pid"] for body in bodies}) == 2
    assert max(b["start"] for b in bodies) >= min(b["end"] for b in bodies)


def test_crashed_runtime_is_replaced(start_server, function_dir):
    server = start_server(f"/ = lambda-runtime:{function_dir}/bootstrap\n")
    _, first = get_json(server, "/hello")
    response, body = get_json(server, "/crash")
    assert (response.status_code, body) == (500, V2_ERROR)
    server.wait_for_log(rf"runtime {first['pid']} exited with error: exit status 3")
    server.wait_for_log(r"Runtime\.ExitError: Runtime exited with error: exit status 3")
    wait_until(lambda: gone(first["pid"]), what="the crashed runtime reaped")
    _, second = get_json(server, "/hello")
    assert second["pid"] != first["pid"]

    # killed from outside while idle: the next request still gets an answer from a new runtime
    os.kill(second["pid"], signal.SIGKILL)
    wait_until(lambda: gone(second["pid"]), what="the killed runtime reaped")
    response, third = get_json(server, "/hello")
    assert response.status_code == 200 and third["pid"] not in (first["pid"], second["pid"])


def test_edit_restarts_runtimes_without_failed_requests(start_server, function_dir):
    server = start_server(f"/ = lambda-runtime:{function_dir}/bootstrap\n")
    _, before = get_json(server, "/hello")
    source = function_dir / "function.py"
    source.write_text(source.read_text().replace('VERSION = "one"', 'VERSION = "two"'))
    seen = []

    def new_version_answers():
        response, body = get_json(server, "/hello")
        assert response.status_code == 200, response.text
        seen.append(body["pid"])
        return body["version"] == "two"

    wait_until(new_version_answers, timeout=20, what="the edited function answering")
    _, after = get_json(server, "/hello")
    assert after["pid"] != before["pid"]
    wait_until(lambda: gone(before["pid"]), what="the old version's runtime stopped")


def test_runtime_api_headers_and_statuses(start_server, probe_dir):
    server = start_server(f"/ = lambda-runtime:{probe_dir}/bootstrap timeout=5\n")
    sent = time.time_ns() // 1_000_000
    response = requests.get(server.url + "/look", timeout=15)
    received = time.time_ns() // 1_000_000
    assert response.status_code == 200
    report = response.json()
    headers = report["headers"]
    assert report["status"] == 200 and headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"[0-9a-f-]{36}", headers["Lambda-Runtime-Aws-Request-Id"])
    assert sent + 5000 <= int(headers["Lambda-Runtime-Deadline-Ms"]) <= received + 5000
    assert headers["Lambda-Runtime-Invoked-Function-Arn"].endswith(":function:probe")
    assert headers["Lambda-Runtime-Trace-Id"].startswith("Root=1-")
    assert "Lambda-Runtime-Client-Context" not in headers
    assert "Lambda-Runtime-Cognito-Identity" not in headers
    assert report["event"]["rawPath"] == "/look" and report["event"]["version"] == "2.0"
    checks = report["checks"]
    assert checks["next_while_busy"][0] == 403
    assert checks["next_while_busy"][1]["errorType"] == "InvalidStateTransition"
    assert checks["unknown_id"] == [
        400,
        {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"},
    ]
    assert checks["wrong_method"][0] == 405 and checks["unknown_path"][0] == 404
    # the answer was accepted; answering the same id again is refused (the probe logs both)
    server.wait_for_log(r'probe\[\d+\]: probe: answer=202 \{"status":"OK"\} again=400')

    client_context = base64.b64encode(b'{"custom": {"a": 1}}').decode()
    report = requests.get(
        server.url + "/look", headers={"X-Amz-Client-Context": client_context}, timeout=15
    ).json()
    assert json.loads(report["headers"]["Lambda-Runtime-Client-Context"]) == {"custom": {"a": 1}}

    response = requests.get(server.url + "/fail", timeout=15)
    assert (response.status_code, response.json()) == (500, V2_ERROR)
    server.wait_for_log(r"ProbeError: probe failed on purpose")


def test_event_does_not_wait_for_a_runtime_that_lingers(start_server, probe_dir):
    server = start_server(f"/ = lambda-runtime:{probe_dir} concurrency=2\n")
    first = requests.get(server.url + "/linger", timeout=15).json()
    second = requests.get(server.url + "/look", timeout=15).json()
    assert second["pid"] != first["pid"]  # a second runtime started for it


def test_memory_limit(start_server, function_dir):
    server = start_server(f"/ = lambda-runtime:{function_dir} memory=128\n")
    _, before = get_json(server, "/hello")
    response, body = get_json(server, "/hog?mb=160")
    assert (response.status_code, body) == (500, V2_ERROR)
    server.wait_for_log(r"Runtime\.OutOfMemory: Runtime exited: memory size 128 MB exceeded")
    wait_until(lambda: gone(before["pid"]), what="the runtime over its memory replaced")
    response, after = get_json(server, "/hello")
    assert response.status_code == 200 and after["pid"] != before["pid"]


def test_pool_passes_client_context_and_cognito_identity(probe_dir):
    """The Runtime API headers that no HTTP request produces, through the pool directly."""

    def environment(address: str) -> dict[str, str]:
        env = {"AWS_LAMBDA_RUNTIME_API": address, "LAMBDA_TASK_ROOT": str(probe_dir)}
        return {**os.environ, **env, "FLEXILIB_PYTHON": sys.executable}

    async def invoke() -> tuple[Outcome, list[int]]:
        pool = RuntimePool(
            asyncio.get_running_loop(),
            argv=[str(probe_dir / "bootstrap")],
            cwd=str(probe_dir),
            environment=environment,
            label="probe",
            arn="arn:aws:lambda:us-east-1:123456789012:function:probe",
            concurrency=1,
            timeout=5,
            memory_mb=128,
        )
        await pool.start()
        pids = [runtime.process.pid for runtime in pool.runtimes]
        try:
            return await pool.invoke(
                "0b6a9bd4-8f44-4a8e-9d2a-3c1c2f1f0e01",
                json.dumps({"rawPath": "/look"}).encode(),
                limit=10,
                client_context='{"custom": {"k": "v"}}',
                cognito_identity='{"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}',
            ), pids
        finally:
            pool.close()
            while pool.runtimes:  # reaped by the loop once they have exited
                await asyncio.sleep(0.01)

    outcome, pids = asyncio.run(invoke())
    assert outcome.kind == Outcome.RESPONSE
    headers = json.loads(json.loads(outcome.body)["body"])["headers"]
    assert headers["Lambda-Runtime-Aws-Request-Id"] == "0b6a9bd4-8f44-4a8e-9d2a-3c1c2f1f0e01"
    assert json.loads(headers["Lambda-Runtime-Client-Context"]) == {"custom": {"k": "v"}}
    assert json.loads(headers["Lambda-Runtime-Cognito-Identity"]) == {
        "cognitoIdentityId": "id-1",
        "cognitoIdentityPoolId": "pool-1",
    }
    assert all(gone(pid) for pid in pids)


def test_init_error_fails_the_load(start_server, probe_dir):
    server = start_server(f"/ = lambda-runtime:{probe_dir} env.PROBE=init-error\n")
    response = requests.get(server.url + "/", timeout=15)
    assert response.status_code == 500
    server.wait_for_log(r"init failed: ProbeInitError: probe cannot start")
    server.wait_for_log(r"probe\[\d+\]: probe: reporting an init error")  # its output


def test_bootstrap_not_executable(start_server, function_dir):
    (function_dir / "bootstrap").chmod(0o644)
    server = start_server(f"/ = lambda-runtime:{function_dir}/bootstrap\n")
    assert requests.get(server.url + "/", timeout=15).status_code == 503
    server.wait_for_log(r"not executable")


def test_stopping_the_server_stops_the_runtimes(start_server, function_dir, tmp_path):
    server = start_server(f"/ = lambda-runtime:{function_dir}/bootstrap concurrency=2\n")
    marks = tmp_path / "marks"
    marks.mkdir()
    with ThreadPoolExecutor(2) as pool:
        bodies = [
            b
            for _, b in pool.map(lambda _: get_json(server, f"/barrier?n=2&dir={marks}"), range(2))
        ]
    pids = {body["pid"] for body in bodies}
    assert len(pids) == 2 and not any(gone(pid) for pid in pids)
    assert server.stop() == 0
    wait_until(lambda: all(gone(pid) for pid in pids), what="runtimes stopped with the server")


def flexilib_check(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flexilib", "check", str(config)], capture_output=True, text=True
    )


def test_check_starts_and_stops_a_runtime(function_dir, tmp_path):
    config = tmp_path / "check.ini"
    config.write_text(f"/ = lambda-runtime:{function_dir}\n")  # the folder holding `bootstrap`
    result = flexilib_check(config)
    assert result.returncode == 0, result.stdout + result.stderr
    pid = int(re.search(r"runtime (\d+) ready", result.stderr).group(1))
    assert gone(pid)


@pytest.mark.parametrize(
    "option", ["concurrency=0", "timeout=x", "format=3.0", "memory=64", "env.AWS_REGION=x", "x=1"]
)
def test_bad_options_are_config_errors(function_dir, option, tmp_path):
    config = tmp_path / "bad.ini"
    config.write_text(f"/ = lambda-runtime:{function_dir}/bootstrap {option}\n")
    result = flexilib_check(config)
    assert result.returncode == 2, result.stdout + result.stderr
