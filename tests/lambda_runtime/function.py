"""The function the lambda-runtime tests serve through awslambdaric; behaviour chosen by path."""

import json
import os
import time
from pathlib import Path

VERSION = "one"  # the reload test rewrites this line
INIT_PID = os.getpid()


def _reply(body, status=200):
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
    }


def handler(event, context):
    path = event.get("rawPath") or event.get("path")
    route = path.rsplit("/", 1)[-1]  # the last segment: /v1/error is "error" too
    query = event.get("queryStringParameters") or {}
    if route == "error":
        raise ValueError("boom from the function")
    if route == "sleep":
        time.sleep(float(query.get("s", "10")))
    if route == "crash":
        os._exit(3)
    if route == "remaining":
        first = context.get_remaining_time_in_millis()
        time.sleep(0.05)
        return _reply({"first": first, "second": context.get_remaining_time_in_millis()})
    if route == "barrier":
        # Proof of parallel invocations: each one waits until `n` of them are running at once.
        start = time.time()
        folder = Path(query["dir"])
        (folder / context.aws_request_id).touch()
        met = False
        while time.time() - start < float(query.get("wait", "8")):
            if len(list(folder.iterdir())) >= int(query["n"]):
                met = True
                break
            time.sleep(0.01)
        return _reply({"pid": os.getpid(), "start": start, "end": time.time(), "met": met})
    if route == "context":
        client = context.client_context
        return _reply(
            {
                "function_name": context.function_name,
                "function_version": context.function_version,
                "invoked_function_arn": context.invoked_function_arn,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "log_group_name": context.log_group_name,
                "aws_request_id": context.aws_request_id,
                "client_custom": client.custom if client else None,
                "trace": os.environ.get("_X_AMZN_TRACE_ID"),
                "env": {
                    k: os.environ.get(k)
                    for k in (
                        "AWS_LAMBDA_FUNCTION_NAME",
                        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                        "AWS_LAMBDA_RUNTIME_API",
                        "LAMBDA_TASK_ROOT",
                        "_HANDLER",
                        "STAGE",
                    )
                },
                "cwd": os.getcwd(),
            }
        )
    if route == "hog":
        data = b"\x01" * (int(query["mb"]) * 1024 * 1024)  # touched, so resident
        return len(data)
    if route == "plain":
        return "just a string"
    return _reply(
        {
            "version": VERSION,
            "pid": os.getpid(),
            "init_pid": INIT_PID,
            "path": path,
            "method": event.get("requestContext", {}).get("http", {}).get("method")
            or event.get("httpMethod"),
        }
    )
