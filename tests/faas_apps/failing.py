"""Lambda functions that fail in each of the ways API Gateway has an answer for."""

import asyncio
import time


def boom(event, context):
    raise ValueError("kaboom")


def own_timeout(event, context):
    # the function's own TimeoutError, long before its Lambda timeout: a function error
    asyncio.run(asyncio.wait_for(asyncio.sleep(5), 0.01))


def malformed(event, context):
    return {"statusCode": 200, "body": "x", "bogus": True}  # a REST API rejects unknown keys


def not_an_object(event, context):
    return "just a string"  # fine for an HTTP API (a JSON body), malformed for a REST API


def sleepy(event, context):
    print("sleepy invocation", context.aws_request_id, flush=True)  # the timeout line names it
    end = time.monotonic() + 30
    while time.monotonic() < end:
        time.sleep(0.05)
    return {"statusCode": 200, "body": "woke up"}


def spin(event, context):
    n = 0
    while True:  # pure Python, never returns: only the timeout can stop it
        n += 1


def fast(event, context):
    return {"statusCode": 200, "body": "fast"}


def hog(event, context):
    data = b"x" * (200 << 20)  # written, so resident: 200 MB
    return {"statusCode": 200, "body": str(len(data))}
