"""The same API on aws-lambda-powertools' HTTP API (2.0) and REST API (1.0) resolvers."""

import base64

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    Response,
    content_types,
)
from aws_lambda_powertools.shared.cookies import Cookie


def make(resolver_class, prefix):
    app = resolver_class()

    @app.get(f"{prefix}/items/<item_id>")
    def get_item(item_id):
        event = app.current_event
        query = event.resolved_query_string_parameters
        return {"id": item_id, "tags": query.get("tag"), "q": event.get_query_string_value("q")}

    @app.post(f"{prefix}/json")
    def post_json():
        return Response(
            status_code=201,
            content_type=content_types.APPLICATION_JSON,
            body={"got": app.current_event.json_body},
        )

    @app.post(f"{prefix}/binary")
    def post_binary():
        event = app.current_event  # decoded_body would decode the bytes as UTF-8: read it raw
        data = base64.b64decode(event.body) if event.is_base64_encoded else event.body.encode()
        return Response(status_code=200, content_type="application/octet-stream", body=data)

    @app.get(f"{prefix}/cookies")
    def cookies():
        return Response(
            status_code=200,
            content_type=content_types.APPLICATION_JSON,
            body={"set": 3},
            cookies=[
                Cookie("a", "1", secure=False),
                Cookie("b", "2", path="/p", secure=False),
                Cookie("c", "3", http_only=True),
            ],
        )

    @app.get(f"{prefix}/teapot")
    def teapot():
        return Response(
            status_code=418,
            content_type=content_types.APPLICATION_JSON,
            body={"detail": "short and stout"},
        )

    return app


http_app = make(APIGatewayHttpResolver, "/pt2")
rest_app = make(APIGatewayRestResolver, "/pt1")


def http_handler(event, context):
    return http_app.resolve(event, context)


def rest_handler(event, context):
    return rest_app.resolve(event, context)
