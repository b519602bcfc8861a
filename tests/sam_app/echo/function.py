"""Echo, run by awslambdaric behind the Runtime API: shows the route API Gateway matched."""

import json


def handler(event, context):
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(
            {
                "routeKey": event["routeKey"],
                "pathParameters": event.get("pathParameters"),
                "rawPath": event["rawPath"],
            }
        ),
    }
