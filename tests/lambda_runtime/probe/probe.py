"""A minimal custom runtime speaking the Runtime API by hand, reporting what it saw.

Each invocation answers with the `/next` headers and the statuses of requests
a runtime should not make (a second `/next`, an unknown id, a wrong method, an
unknown path). After answering `/linger` it sleeps before asking again.
`PROBE=init-error` reports an init error and exits instead.
"""

import http.client
import json
import os
import sys
import time

HOST, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
BASE = "/2018-06-01/runtime/"
connection = http.client.HTTPConnection(HOST, int(PORT))  # one keep-alive connection


def call(method, path, body=None, headers=None):
    connection.request(method, BASE + path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def status_and_json(method, path, body=None):
    status, _, data = call(method, path, body)
    try:
        return [status, json.loads(data)]
    except ValueError:
        return [status, data.decode()]


if os.environ.get("PROBE") == "init-error":
    print("probe: reporting an init error", flush=True)
    error = {"errorMessage": "probe cannot start", "errorType": "ProbeInitError", "stackTrace": []}
    status, _, _ = call(
        "POST", "init/error", json.dumps(error), {"Lambda-Runtime-Function-Error-Type": "Unhandled"}
    )
    print(f"probe: init/error answered {status}", flush=True)
    sys.exit(1)

while True:
    status, headers, body = call("GET", "invocation/next")
    request_id = headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.loads(body)
    checks = {
        "next_while_busy": status_and_json("GET", "invocation/next"),
        "unknown_id": status_and_json("POST", "invocation/no-such-id/response", b"{}"),
        "wrong_method": status_and_json("GET", f"invocation/{request_id}/response"),
        "unknown_path": status_and_json("GET", "nothing/here"),
    }
    if event["rawPath"] == "/fail":
        error = {"errorMessage": "probe failed on purpose", "errorType": "ProbeError"}
        answer = call(
            "POST",
            f"invocation/{request_id}/error",
            json.dumps(error),
            {"Lambda-Runtime-Function-Error-Type": "ProbeError"},
        )
    else:
        report = {
            "status": status,
            "headers": headers,
            "event": event,
            "checks": checks,
            "pid": os.getpid(),
        }
        result = {"statusCode": 200, "body": json.dumps(report)}
        answer = call("POST", f"invocation/{request_id}/response", json.dumps(result))
    again = call("POST", f"invocation/{request_id}/response", b"{}")
    print(f"probe: answer={answer[0]} {answer[2].decode()} again={again[0]}", flush=True)
    if event["rawPath"] == "/linger":
        time.sleep(30)  # busy after answering: the next event must not wait for this runtime
