"""A Cloudflare Python Worker in the `WorkerEntrypoint` style, as deployed there."""

import asyncio
import os
from urllib.parse import parse_qs, urlsplit

from workers import Response, WorkerEntrypoint


async def after_response(release, marker):
    """waitUntil work: waits for the test's go-ahead, then leaves a marker file."""
    while not os.path.exists(release):
        await asyncio.sleep(0.01)
    with open(marker, "w") as out:
        out.write("done")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlsplit(request.url)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/wc/json":
            return Response.json(
                {
                    "name": self.env.NAME,
                    "greeting": self.env.GREETING,
                    "method": str(request.method),
                    "url": request.url,
                }
            )
        if path == "/wc/echo-json":
            return Response.json({"got": await request.json()}, status=201)
        if path == "/wc/text":
            text = await request.text()
            return Response(text.upper(), headers={"content-type": "text/plain; charset=utf-8"})
        if path == "/wc/bytes":
            data = await request.bytes()
            return Response(data, headers={"content-type": "application/octet-stream"})
        if path == "/wc/headers-list":
            return Response(
                "list",
                headers=[
                    ("x-multi", "a"),
                    ("x-multi", "b"),
                    ("set-cookie", "a=1; Path=/"),
                    ("set-cookie", "b=2; Path=/"),
                ],
            )
        if path == "/wc/headers-dict":
            return Response("dict", headers={"X-One": "1", "x-two": "2"})
        if path == "/wc/request-headers":
            return Response.json(
                {"x_test": request.headers.get("x-test"), "names": sorted(request.headers)}
            )
        if path == "/wc/status":
            return Response("made", status=201, status_text="Made It Here")
        if path == "/wc/redirect":
            return Response.redirect("https://example.com/elsewhere", 301)
        if path == "/wc/wait":
            self.ctx.waitUntil(after_response(query["release"], query["marker"]))
            return Response("sent")
        return Response("no such page", status=404)
