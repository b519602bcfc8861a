"""AWS Lambda handler (payload format 2.0) for the benchmark: the sample library's answer to wrk.

Served through `lambda:` in-process, through `lambda-runtime:` by awslambdaric,
and called directly in Python for the floor. The body is fixed rather than a
header count: API Gateway adds its own headers (`x-forwarded-*`) to the event,
so counting them would not give the sample library's number.
"""

RESPONSE = {
    "statusCode": 200,
    "headers": {"content-type": "text/plain", "x-custom-foo": "bar"},
    "body": " 1",
}


def handler(event, context):
    return RESPONSE
