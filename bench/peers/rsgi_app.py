"""A raw RSGI app (no framework) for granian, answering the fixed payload.

granian --interface rsgi --workers 1 peers.rsgi_app:app
"""

from __future__ import annotations

from lib.payload import BODY, CONTENT_TYPE, EXTRA_HEADERS, STATUS

HEADERS = [("content-type", CONTENT_TYPE)] + [(n.lower(), v) for n, v in EXTRA_HEADERS]


async def app(scope, protocol) -> None:  # noqa: ANN001 - the RSGI signature
    protocol.response_bytes(STATUS, HEADERS, BODY)
