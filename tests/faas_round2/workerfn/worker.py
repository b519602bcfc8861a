"""Cloudflare's FastAPI-on-Workers pattern, plus the js module and form_data()."""

from fastapi import FastAPI, Request
from workers import Response, WorkerEntrypoint
from wpkg import deep

app = FastAPI()


@app.get("/api/hello")
async def hello(req: Request):
    env = req.scope["env"]
    return {"message": "hello " + env.WHO, "deep": deep.VERSION}


@app.post("/api/items")
async def items(req: Request):
    return {"got": await req.json()}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = request.url.split("/", 3)[-1]
        if path.startswith("js"):
            from js import Headers, console
            from js import Response as JsResponse

            console.log("js console from the worker")
            return JsResponse.new(
                "made the JS way", status=201, headers=Headers.new({"x-js": "yes"}.items())
            )
        if path.startswith("form"):
            form = await request.form_data()
            upload = form["upload"]
            text = await upload.text()
            return Response.json(
                {
                    "name": form.get("name"),
                    "tags": form.get_all("tag"),
                    "file": upload.name,
                    "type": upload.type,
                    "size": upload.size,
                    "text": text,
                }
            )
        import asgi

        return await asgi.fetch(app, request, self.env)
