"""Test handler: echoes what it received, as JSON."""

import json

from flexilib import Response


def handle_request(request):
    return Response(
        json.dumps(
            {
                "method": request.method,
                "target": request.target,
                "path": request.path,
                "query": request.query,
                "headers": request.headers.items(),
                "body": request.body.decode("latin-1"),
                "client": list(request.client),
                "version": request.http_version,
            }
        ),
        content_type="application/json",
    )
