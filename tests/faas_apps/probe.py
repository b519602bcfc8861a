"""A Lambda function that reports what it was given: its event, context and environment.

Module-level code is Lambda's init: it runs once per load, so `INIT_ID` and
the line appended to `$INIT_LOG` change only when the function is (re)loaded,
while `CALLS` counts the invocations that load has served.
"""

import asyncio
import json
import os
import threading
import time
import uuid

INIT_ID = uuid.uuid4().hex
CALLS = 0
if os.environ.get("INIT_LOG"):
    with open(os.environ["INIT_LOG"], "a") as log:
        log.write(INIT_ID + "\n")

LAMBDA_VARIABLES = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "_HANDLER",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "TZ",
)


def event_v2(event, context):
    return event  # not a response object: the HTTP API sends it as a JSON body


def event_v1(event, context):
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(event),
    }


def context_info(event, context):
    global CALLS
    CALLS += 1
    return {
        "init": INIT_ID,
        "calls": CALLS,
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "identity": context.identity.cognito_identity_id,
        "client_context": context.client_context,
        "environ": {name: os.environ.get(name) for name in LAMBDA_VARIABLES},
        "secret": os.getenv("SECRET"),
    }


def env_twice(event, context):
    first = os.environ.get("SECRET")
    time.sleep(0.002)  # give the other function's calls on other threads a chance to run
    return {
        "first": first,
        "second": os.environ["SECRET"] if "SECRET" in os.environ else None,
        "only_a": "ONLY_A" in os.environ,
        "only_b": "ONLY_B" in os.environ,
        "in_copy": dict(os.environ).get("SECRET"),
    }


def async_run(event, context):
    async def work():
        await asyncio.sleep(0)
        return "ran"

    return asyncio.run(work())  # leaves the thread without a current event loop


def where(event, context):
    """Where the call ran: on which thread, in which working directory."""
    return {
        "main_thread": threading.current_thread() is threading.main_thread(),
        "cwd": os.getcwd(),
    }


def own_loops(event, context):
    """Event loops of the function's own, as Mangum and `asyncio.run` make them."""

    async def work():
        await asyncio.sleep(0)
        return "ran"

    return {
        **where(event, context),
        "get_event_loop": asyncio.get_event_loop().run_until_complete(work()),
        "run": asyncio.run(work()),
    }
