"""The handler a derived image adds: a Python module copied into the image."""

from urllib.parse import parse_qs

from flexilib import Response


def handle_request(request):
    name = parse_qs(request.query).get("name", ["world"])[0]
    return Response(f"greetings, {name}, from a derived image\n")
