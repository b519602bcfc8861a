"""A Cloudflare Python Worker, unmodified: served by `worker:examples/worker/worker.py`."""

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response.json(
            {"hello": self.env.NAME, "method": str(request.method), "url": request.url},
            headers={"x-served-by": "flexilib"},
        )
