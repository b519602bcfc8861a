"""The Lambda Runtime API of one execution environment, as a custom runtime sees it.

Lambda gives every execution environment its own Runtime API endpoint
(`AWS_LAMBDA_RUNTIME_API`), and one runtime process polls it, one invocation
at a time. flexilib does the same: each runtime process gets a `RuntimeApi`
with its own listener on 127.0.0.1 (a port the kernel picks), so every
request on it is known to come from that process, and a timeout or a crash
is pinned on the right one.

Endpoints (API version 2018-06-01, the published OpenAPI document; statuses
and error bodies as the Runtime Interface Emulator renders them):

- `GET /2018-06-01/runtime/invocation/next`: held open until an invocation
  is handed over: 200, the event as the body, with the headers
  `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
  `Lambda-Runtime-Invoked-Function-Arn`, `Lambda-Runtime-Trace-Id`, and
  `Lambda-Runtime-Client-Context` / `Lambda-Runtime-Cognito-Identity` (JSON)
  when the invocation carries them. Asking again while an invocation is
  unanswered: 403 `InvalidStateTransition`.
- `POST …/invocation/{id}/response`: 202 `{"status":"OK"}`; an id that is
  not the current invocation's (unknown, answered, timed out): 400
  `InvalidRequestID`; a body over 6 MiB + 100 bytes: 413
  `RequestEntityTooLarge` (and the invocation fails).
- `POST …/invocation/{id}/error`: 202; the error type from the
  `Lambda-Runtime-Function-Error-Type` header, the JSON error document as
  the body; 400 for an id as above.
- `POST /2018-06-01/runtime/init/error`: 202; the runtime is then expected
  to exit.
- Anything else: 404, or 405 for a known path with another method.

The owner (`RuntimePool`) is told what happens through the `ApiOwner`
methods; this module knows nothing of processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections import deque
from typing import Protocol

from httptools import HttpParserError, HttpRequestParser

from flexilib.http.status import status_line

__all__ = [
    "MAX_PAYLOAD",
    "ApiOwner",
    "Invocation",
    "Outcome",
    "RuntimeApi",
    "new_trace_id",
]

#: The largest response a runtime may post (the emulator's limit: 6 MiB + 100 bytes).
MAX_PAYLOAD = 6 * 1024 * 1024 + 100

_PREFIX = b"/2018-06-01/runtime/"
_NEXT = b"invocation/next"
_INIT_ERROR = b"init/error"
_JSON = b"application/json"
_ACCEPTED = b'{"status":"OK"}'

# RuntimeApi.state
STARTING, IDLE, BUSY, RUNNING, FAILED, CLOSED = (
    "starting",
    "idle",
    "busy",
    "running",
    "failed",
    "closed",
)


class Outcome:
    """How an invocation ended, for the handler to turn into an HTTP response.

    `kind` is one of the class constants: `RESPONSE` (`body` is what the
    runtime posted), `ERROR` (the runtime reported a function error: `body`
    is its error document, `error_type` its type), `TIMEOUT` (the function's
    timeout passed), `EXIT` (the runtime died or was stopped: `error_type` and
    `message` say why), `GATEWAY_TIMEOUT` (API Gateway's own limit passed
    first).
    """

    RESPONSE, ERROR, TIMEOUT, EXIT, GATEWAY_TIMEOUT = (
        "response",
        "error",
        "timeout",
        "exit",
        "gateway-timeout",
    )
    __slots__ = ("kind", "body", "error_type", "message")

    def __init__(
        self, kind: str, *, body: bytes = b"", error_type: str = "", message: str = ""
    ) -> None:
        self.kind = kind
        self.body = body
        self.error_type = error_type
        self.message = message

    def describe(self) -> str:
        """One line for the log: the error type and message, as Lambda reports them."""
        if self.kind == Outcome.ERROR:
            try:
                doc = json.loads(self.body)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                kind = doc.get("errorType") or self.error_type
                return f"{kind}: {doc.get('errorMessage', '')}"
            return f"{self.error_type}: {self.body[:500].decode('utf-8', 'replace')}"
        return f"{self.error_type}: {self.message}" if self.error_type else self.message


class Invocation:
    """One event on its way through a runtime. `future` gets the `Outcome`.

    Two timers may run for it: `gateway` (API Gateway's limit, from the
    moment the request arrived) and `deadline` (the function's timeout, from
    the moment a runtime took the event). Whichever fires first answers the
    client; the function's timer still stops the runtime when it fires.
    """

    __slots__ = (
        "request_id",
        "payload",
        "timeout",
        "arn",
        "trace_id",
        "client_context",
        "cognito_identity",
        "future",
        "gateway",
        "deadline",
    )

    def __init__(
        self,
        request_id: str,
        payload: bytes,
        *,
        timeout: float,
        arn: str,
        future: asyncio.Future,
        trace_id: str | None = None,
        client_context: str | None = None,
        cognito_identity: str | None = None,
    ) -> None:
        self.request_id = request_id
        self.payload = payload
        self.timeout = timeout
        self.arn = arn
        self.trace_id = trace_id or new_trace_id()
        self.client_context = client_context  # JSON text, or None
        self.cognito_identity = cognito_identity  # JSON text, or None
        self.future = future
        self.gateway: asyncio.TimerHandle | None = None
        self.deadline: asyncio.TimerHandle | None = None

    def settle(self, outcome: Outcome) -> None:
        """Give the client its outcome, unless it has one already."""
        if self.gateway is not None:
            self.gateway.cancel()
            self.gateway = None
        if not self.future.done():
            self.future.set_result(outcome)

    def finish(self, outcome: Outcome) -> None:
        """The runtime is done with it (answered, died, timed out): stop its deadline, settle."""
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.settle(outcome)


def new_trace_id() -> str:
    """An X-Ray trace header as Lambda passes it: a new root, a parent segment, not sampled."""
    return (
        f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()};"
        f"Parent={os.urandom(8).hex()};Sampled=0"
    )


class ApiOwner(Protocol):
    """What a `RuntimeApi` reports to the pool that owns it."""

    def api_idle(self, api: RuntimeApi, first: bool) -> None:
        """The runtime is waiting for an invocation (`first`: its init has just finished)."""

    def api_result(self, api: RuntimeApi, invocation: Invocation, outcome: Outcome) -> None:
        """The runtime answered `invocation`."""

    def api_init_error(self, api: RuntimeApi, outcome: Outcome) -> None:
        """The runtime reported an init error; it should exit now."""


class RuntimeApi:
    """The endpoint of one execution environment; see the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop, owner: ApiOwner) -> None:
        self.loop = loop
        self.owner = owner
        self.state = STARTING
        self.invocation: Invocation | None = None
        self._poll: _Connection | None = None
        self._connections: set[_Connection] = set()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.setblocking(False)
        self.address = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._server: asyncio.AbstractServer | None = None
        self._serving = loop.create_task(self._serve())

    async def _serve(self) -> None:
        self._server = await self.loop.create_server(lambda: _Connection(self), sock=self._sock)

    # -- handing over work ---------------------------------------------------------
    def deliver(self, invocation: Invocation) -> None:
        """Answer the parked `/next` with `invocation`; its deadline counts from now."""
        connection, self._poll = self._poll, None
        self.state = BUSY
        self.invocation = invocation
        deadline_ms = time.time_ns() // 1_000_000 + int(invocation.timeout * 1000)
        headers = [
            b"Lambda-Runtime-Aws-Request-Id: %s\r\n" % invocation.request_id.encode(),
            b"Lambda-Runtime-Deadline-Ms: %d\r\n" % deadline_ms,
            b"Lambda-Runtime-Invoked-Function-Arn: %s\r\n" % invocation.arn.encode(),
            b"Lambda-Runtime-Trace-Id: %s\r\n" % invocation.trace_id.encode(),
        ]
        if invocation.client_context is not None:
            headers.append(
                b"Lambda-Runtime-Client-Context: %s\r\n" % invocation.client_context.encode()
            )
        if invocation.cognito_identity is not None:
            headers.append(
                b"Lambda-Runtime-Cognito-Identity: %s\r\n" % invocation.cognito_identity.encode()
            )
        connection.respond(200, invocation.payload, b"".join(headers))

    def abandon(self) -> Invocation | None:
        """Forget the current invocation (timed out, runtime stopping); a late answer gets 400."""
        invocation, self.invocation = self.invocation, None
        return invocation

    def close(self) -> None:
        """Stop listening and drop every connection; idempotent, needs no running loop."""
        if self.state == CLOSED:
            return
        self.state = CLOSED
        self._poll = None
        if self._server is not None:
            self._server.close()
        else:
            self._serving.cancel()
        self._sock.close()
        for connection in list(self._connections):
            connection.abort()
        self._connections.clear()

    # -- requests from the runtime ---------------------------------------------------
    def handle(
        self, conn: _Connection, method: bytes, path: bytes, headers: dict, body: bytes | None
    ) -> None:
        """Route one complete request; `body` is bytes, or None when it was over MAX_PAYLOAD."""
        if self.state == CLOSED:
            conn.respond(500, _error("InternalServerError", "Internal Server Error"))
            return
        if not path.startswith(_PREFIX):
            conn.respond(404, b"404 page not found\n", content_type=b"text/plain; charset=utf-8")
            return
        rest = path[len(_PREFIX) :]
        if rest == _NEXT:
            want = b"GET"
        elif rest == _INIT_ERROR:
            want = b"POST"
        elif rest.startswith(b"invocation/") and (
            rest.endswith(b"/response") or rest.endswith(b"/error")
        ):
            want = b"POST"
        else:
            conn.respond(404, b"404 page not found\n", content_type=b"text/plain; charset=utf-8")
            return
        if method != want:
            conn.respond(405, b"")
            return
        if rest == _NEXT:
            self._next(conn)
        elif rest == _INIT_ERROR:
            self._init_error(conn, headers, body)
        else:
            request_id, _, verb = rest[len(b"invocation/") :].rpartition(b"/")
            self._answer(conn, request_id.decode("latin-1"), verb == b"response", headers, body)

    def _next(self, conn: _Connection) -> None:
        if self.state in (BUSY, FAILED) or self._poll is not None:
            why = (
                "the current invocation has no answer yet" if self.state == BUSY else "not allowed"
            )
            message = (
                f"State transition from {_STATE_NAMES[self.state]} to Ready failed for runtime. "
                f"Error: {why}"
            )
            conn.respond(403, _error("InvalidStateTransition", message))
            return
        first = self.state == STARTING
        self.state = IDLE
        self._poll = conn
        conn.parked = True
        self.owner.api_idle(self, first)

    def _answer(
        self, conn: _Connection, request_id: str, success: bool, headers: dict, body
    ) -> None:
        invocation = self.invocation
        if invocation is None or invocation.request_id != request_id:
            conn.respond(400, _error("InvalidRequestID", "Invalid request ID"))
            return
        self.invocation = None
        self.state = RUNNING
        if body is None:
            conn.respond(
                413,
                _error(
                    "RequestEntityTooLarge",
                    f"Exceeded maximum allowed payload size ({MAX_PAYLOAD} bytes).",
                ),
            )
            outcome = Outcome(
                Outcome.EXIT,
                error_type="Function.ResponseSizeTooLarge",
                message=f"Response payload size exceeded maximum allowed payload size "
                f"({MAX_PAYLOAD} bytes).",
            )
        elif success:
            conn.respond(202, _ACCEPTED)
            outcome = Outcome(Outcome.RESPONSE, body=body)
        else:
            conn.respond(202, _ACCEPTED)
            error_type = headers.get(b"lambda-runtime-function-error-type", b"")
            outcome = Outcome(Outcome.ERROR, body=body, error_type=error_type.decode("latin-1"))
        self.owner.api_result(self, invocation, outcome)

    def _init_error(self, conn: _Connection, headers: dict, body) -> None:
        conn.respond(202, _ACCEPTED)
        error_type = headers.get(b"lambda-runtime-function-error-type", b"").decode("latin-1")
        outcome = Outcome(
            Outcome.ERROR, body=body or b"", error_type=error_type or "Runtime.InitError"
        )
        self.state = FAILED
        self.owner.api_init_error(self, outcome)

    def attach(self, conn: _Connection) -> None:
        self._connections.add(conn)

    def lost(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        if conn is self._poll:
            self._poll = None
            if self.state == IDLE:
                self.state = RUNNING  # not waiting any more; it may poll again


_STATE_NAMES = {
    STARTING: "Initializing",
    IDLE: "Ready",
    BUSY: "Invoking",
    RUNNING: "ResponseSent",
    FAILED: "InitError",
    CLOSED: "Shutdown",
}


def _error(error_type: str, message: str) -> bytes:
    """The Runtime API's error document (`ErrorResponse` in the OpenAPI document)."""
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection from the runtime: requests answered in order, keep-alive."""

    def __init__(self, api: RuntimeApi) -> None:
        self.api = api
        self.parser = HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.parked = False  # a /next is waiting on this connection
        self.pending: deque = deque()  # requests that arrived behind a parked one
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.keep_alive = True
        self.closed = False
        self.draining = False

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        if self.api.state == CLOSED:
            transport.abort()
            return
        self.api.attach(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pending.clear()
        self.api.lost(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except HttpParserError:
            self.keep_alive = False
            self.respond(400, _error("InvalidRequestFormat", "malformed HTTP request"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = {}
        self.chunks = []
        self.size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size <= MAX_PAYLOAD:
            self.chunks.append(chunk)
        else:
            self.chunks = []  # over the limit: keep reading, keep nothing

    def on_message_complete(self) -> None:
        body = b"".join(self.chunks) if self.size <= MAX_PAYLOAD else None
        request = (
            self.parser.get_method(),
            self.url.partition(b"?")[0],
            self.headers,
            body,
            self.parser.should_keep_alive(),
        )
        if self.parked or self.pending:
            self.pending.append(request)
        else:
            self._handle(request)

    def _handle(self, request: tuple) -> None:
        method, path, headers, body, keep_alive = request
        self.keep_alive = keep_alive
        self.api.handle(self, method, path, headers, body)

    def respond(
        self, status: int, body: bytes, extra: bytes = b"", content_type: bytes = _JSON
    ) -> None:
        """Write one response; then close, or go on with the next request in line."""
        self.parked = False
        if self.closed:
            return
        head = b"%sContent-Type: %s\r\n%sContent-Length: %d\r\n%s\r\n" % (
            status_line(status),
            content_type,
            extra,
            len(body),
            b"" if self.keep_alive else b"Connection: close\r\n",
        )
        self.transport.write(head + body)
        if not self.keep_alive:
            self.closed = True
            self.transport.close()
            return
        if self.draining:
            return  # the loop below, further up the stack, goes on
        self.draining = True
        try:
            while self.pending and not self.parked and not self.closed:
                self._handle(self.pending.popleft())
        finally:
            self.draining = False

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
