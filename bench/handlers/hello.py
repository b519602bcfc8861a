"""Python handler for the benchmark: answers what the sample library answers.

Body: a space and the number of request headers; plus `X-custom-foo: bar`.
"""

from flexilib import Response

HEADERS = [("X-custom-foo", "bar"), ("Content-Type", "text/plain")]


def handle_request(request):
    return Response(f" {len(request.headers)}", headers=HEADERS)
