"""A raw ASGI app (no framework) for uvicorn, answering the fixed payload.

uvicorn --loop uvloop --http httptools --workers 1 peers.asgi_app:app
"""

from __future__ import annotations

from lib.payload import BODY, CONTENT_TYPE, EXTRA_HEADERS, STATUS

START = {
    "type": "http.response.start",
    "status": STATUS,
    "headers": [(b"content-type", CONTENT_TYPE.encode())]
    + [(n.lower().encode(), v.encode()) for n, v in EXTRA_HEADERS],
}
BODY_MESSAGE = {"type": "http.response.body", "body": BODY}


async def app(scope, receive, send) -> None:  # noqa: ANN001 - the ASGI signature
    if scope["type"] != "http":
        return
    await send(START)
    await send(BODY_MESSAGE)
