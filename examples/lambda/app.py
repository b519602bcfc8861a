"""An AWS Lambda function, unmodified: served by `lambda:examples/lambda/app.py:handler`."""

import json
import os

GREETING = os.environ.get("GREETING", "hello")  # module level: runs once per load (Lambda's init)


def handler(event, context):
    name = (event.get("queryStringParameters") or {}).get("name", "world")
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "cookies": ["visited=1; Path=/"],
        "body": json.dumps(
            {
                "message": f"{GREETING} {name}",
                "path": event["rawPath"],
                "function": context.function_name,
                "requestId": context.aws_request_id,
                "remainingMs": context.get_remaining_time_in_millis(),
            }
        ),
    }
