"""Users: Powertools' HTTP API resolver; `utils` is this folder's (orders/ has another)."""

import os

import utils
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, NotFoundError

app = APIGatewayHttpResolver()
USERS = {"1": "ada", "2": "grace"}


@app.get("/users/me")
def me():
    return {"user": "me", "module": __name__, "cwd": os.getcwd()}


@app.get("/users/<user_id>")
def get_user(user_id):
    if user_id not in USERS:
        raise NotFoundError(f"no user {user_id}")
    event = app.current_event
    return {
        "id": user_id,
        "name": USERS[user_id],
        "utils": utils.WHO,
        "routeKey": event.raw_event["routeKey"],
        "pathParameters": event.path_parameters,
        "env": {k: os.environ.get(k) for k in ("STAGE", "SHARED", "GREETING", "ORDERS")},
        "arn": os.environ.get("SELF_ARN"),
        "data": open("data.txt").read().strip(),
    }


@app.post("/users")
def create_user():
    body = app.current_event.json_body or {}
    if "name" not in body:
        raise BadRequestError("name is required")
    return {"created": body["name"]}, 201


def lambda_handler(event, context):
    return app.resolve(event, context)
