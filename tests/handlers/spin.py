"""A Python handler that loops for as long as `?spin` asks (never, by itself, answering)."""

import time


def handle_request(request):
    if "spin" in request.query:
        while True:
            time.monotonic()
    return "done"
