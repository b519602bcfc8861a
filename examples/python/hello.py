"""A Python handler: flexilib calls handle_request(request) for each request."""

from flexilib import Response


def handle_request(request):
    name = request.headers.get("x-name", "world")
    return Response(f"hello {name} from Python ({request.method} {request.path})\n")
