"""Answers with one response header taken from the query: ?n=<hex name>&v=<hex value>."""

from urllib.parse import parse_qs

from flexilib import Response


def _pair(query: str) -> tuple[str, str]:
    params = parse_qs(query, keep_blank_values=True)
    return tuple(bytes.fromhex(params[k][0]).decode("latin-1") for k in ("n", "v"))


def handle_request(request):
    return Response(b"ok", headers=[_pair(request.query)])


def lambda_handler(event, context):
    query = event.get("rawQueryString", "")
    name, value = _pair(query)
    return {"statusCode": 200, "headers": {name: value}, "body": "ok"}
