"""Powertools resolvers raising its HTTP errors: statusCode is an http.HTTPStatus."""

from decimal import Decimal

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, APIGatewayRestResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError


def make(resolver):
    app = resolver(enable_validation=True)

    @app.get("/pt/missing")
    def missing():
        raise NotFoundError("nothing here")

    @app.get("/pt/count/<n>")
    def count(n: int):  # validated: a non-integer is a 422
        return {"n": n, "price": Decimal("1.50"), "whole": Decimal("3")}

    return app


http_app = make(APIGatewayHttpResolver)
rest_app = make(APIGatewayRestResolver)


def http_handler(event, context):
    return http_app.resolve(event, context)


def rest_handler(event, context):
    return rest_app.resolve(event, context)
