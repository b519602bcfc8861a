"""A FastAPI app served on Lambda through Mangum, as deployed behind an HTTP API."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from mangum import Mangum

app = FastAPI()


@app.get("/asgi/items/{item_id}")
async def get_item(item_id: str, request: Request):
    return {
        "id": item_id,
        "tags": request.query_params.getlist("tag"),
        "q": request.query_params.get("q"),
        "cookies": dict(request.cookies),
    }


@app.post("/asgi/json")
async def post_json(request: Request):
    return JSONResponse({"got": await request.json()}, status_code=201)


@app.post("/asgi/binary")
async def post_binary(request: Request):
    return Response(await request.body(), media_type="application/octet-stream")


@app.get("/asgi/cookies")
async def cookies():
    response = JSONResponse({"set": 3})
    response.set_cookie("a", "1")
    response.set_cookie("b", "2", path="/asgi")
    response.set_cookie("c", "3", httponly=True)
    return response


@app.get("/asgi/teapot")
async def teapot():
    return JSONResponse({"detail": "short and stout"}, status_code=418)


handler = Mangum(app)
