"""A Cloudflare Python Worker in the older top-level `on_fetch` style."""

import asyncio
import os
from urllib.parse import parse_qs, urlsplit

from workers import Response


async def after_response(release, marker):
    """waitUntil work: waits for the test's go-ahead, then leaves a marker file."""
    while not os.path.exists(release):
        await asyncio.sleep(0.01)
    with open(marker, "w") as out:
        out.write("done")


async def on_fetch(request, env, ctx):
    url = urlsplit(request.url)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    if url.path == "/wf/json":
        body = await request.json() if request.method == "POST" else None
        return Response.json(
            {
                "name": env.NAME,
                "greeting": env.GREETING,
                "method": str(request.method),
                "got": body,
            },
            headers=[("x-style", "on_fetch")],
        )
    if url.path == "/wf/status":
        return Response("gone", status=410, status_text="Long Gone")
    if url.path == "/wf/redirect":
        return Response.redirect(f"{url.scheme}://{url.netloc}/wf/json", 307)
    if url.path == "/wf/wait":
        ctx.waitUntil(after_response(query["release"], query["marker"]))
        return Response("sent")
    return Response("no such page", status=404)
