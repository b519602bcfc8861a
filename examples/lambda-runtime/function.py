"""An AWS Lambda function, unmodified, served through a custom runtime (`bootstrap` beside it).

Route: `/lambda-runtime = lambda-runtime:examples/lambda-runtime/bootstrap env.GREETING=hello`
"""

import json
import os

GREETING = os.environ.get("GREETING", "hello")  # module level: runs once per runtime init


def handler(event, context):
    name = (event.get("queryStringParameters") or {}).get("name", "world")
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(
            {
                "message": f"{GREETING} {name}",
                "path": event["rawPath"],
                "function": context.function_name,
                "requestId": context.aws_request_id,
                "remainingMs": context.get_remaining_time_in_millis(),
                "pid": os.getpid(),
            }
        ),
    }
