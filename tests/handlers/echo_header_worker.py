"""A Cloudflare-style worker answering with one header from the query (?n=<hex>&v=<hex>)."""

from urllib.parse import parse_qs, urlsplit

from workers import Response


async def on_fetch(request, env, ctx):
    params = parse_qs(urlsplit(request.url).query, keep_blank_values=True)
    name, value = (bytes.fromhex(params[k][0]).decode("latin-1") for k in ("n", "v"))
    return Response("ok", headers=[(name, value)])
