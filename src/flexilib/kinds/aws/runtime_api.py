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

The HTTP side is flexilib's own protocol (`http/protocol.py`), with this
class as its application: a parked `/next` is simply an exchange answered
later, and requests a runtime pipelines behind it wait their turn there.
The owner (`RuntimePool`) is told what happens through the `ApiOwner`
methods; this module knows nothing of processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from typing import Protocol

from flexilib.http.connections import Connections
from flexilib.http.exchange import Exchange
from flexilib.http.protocol import HttpProtocol
from flexilib.kinds.aws.peer import peer_uid
from flexilib.log import diag
from flexilib.response import Response
from flexilib.settings import Limits

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
_TEXT = b"text/plain; charset=utf-8"
# a runtime keeps its connection between invocations; its bodies are counted here, streamed
_LIMITS = Limits(keepalive_timeout=900.0, max_connections=64)
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
        self._poll: Exchange | None = None  # a parked `/next`
        self._connections = Connections(_LIMITS, loop.time)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.setblocking(False)
        self.address = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._server: asyncio.AbstractServer | None = None
        self._serving = loop.create_task(self._serve())
        self._ticker = loop.call_later(1.0, self._tick)

    async def _serve(self) -> None:
        self._server = await self.loop.create_server(
            lambda: _RuntimeConnection(self, self._connections, self.loop), sock=self._sock
        )

    def _tick(self) -> None:
        self._connections.tick()
        self._ticker = self.loop.call_later(1.0, self._tick)

    # -- handing over work ---------------------------------------------------------
    def deliver(self, invocation: Invocation) -> None:
        """Answer the parked `/next` with `invocation`; its deadline counts from now."""
        exchange, self._poll = self._poll, None
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
        _reply(exchange, 200, invocation.payload, b"".join(headers))

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
        self._ticker.cancel()
        if self._server is not None:
            self._server.close()
        else:
            self._serving.cancel()
        self._sock.close()
        self._connections.abort_all()

    # -- http.protocol.Application -------------------------------------------------------
    def head(self, exchange: Exchange) -> bool:
        """Route by path; POST bodies are streamed here, so their size is counted, not held."""
        return exchange.request.raw_method == b"POST"

    def start(self, exchange: Exchange) -> None:
        request = exchange.request
        if self.state == CLOSED:
            _reply(exchange, 500, _error("InternalServerError", "Internal Server Error"))
            return
        path = request.raw_target.partition(b"?")[0]
        rest = path[len(_PREFIX) :] if path.startswith(_PREFIX) else None
        if rest == _NEXT:
            want = b"GET"
        elif rest == _INIT_ERROR or (
            rest is not None
            and rest.startswith(b"invocation/")
            and (rest.endswith(b"/response") or rest.endswith(b"/error"))
        ):
            want = b"POST"
        else:
            _reply(exchange, 404, b"404 page not found\n", content_type=_TEXT)
            return
        if request.raw_method != want:
            _reply(exchange, 405, b"")
            return
        if rest == _NEXT:
            self._next(exchange)
        else:
            self.loop.create_task(self._post(exchange, rest))

    def finished(self, exchange: Exchange) -> None:
        """Nothing to log: the invocation's outcome is what the server's log reports."""

    # -- the endpoints ---------------------------------------------------------------------
    def _next(self, exchange: Exchange) -> None:
        if self.state in (BUSY, FAILED) or self._poll is not None:
            why = (
                "the current invocation has no answer yet" if self.state == BUSY else "not allowed"
            )
            message = (
                f"State transition from {_STATE_NAMES[self.state]} to Ready failed for runtime. "
                f"Error: {why}"
            )
            _reply(exchange, 403, _error("InvalidStateTransition", message))
            return
        first = self.state == STARTING
        self.state = IDLE
        self._poll = exchange
        exchange.on_lost = self._poll_lost
        self.owner.api_idle(self, first)

    def _poll_lost(self, exchange: Exchange) -> None:
        if exchange is self._poll:
            self._poll = None
            if self.state == IDLE:
                self.state = RUNNING  # not waiting any more; it may poll again

    async def _post(self, exchange: Exchange, rest: bytes) -> None:
        """Read a posted body (None past MAX_PAYLOAD: counted, not kept), then act on it."""
        size = 0
        chunks: list[bytes] | None = []
        try:
            while data := await exchange.receive():
                size += len(data)
                if size > MAX_PAYLOAD:
                    chunks = None
                elif chunks is not None:
                    chunks.append(data)
        except ConnectionResetError:
            return  # the runtime went away mid-post
        body = b"".join(chunks) if chunks is not None else None
        headers = exchange.request.headers
        error_type = headers.get("lambda-runtime-function-error-type", "")
        if rest == _INIT_ERROR:
            self._init_error(exchange, error_type, body)
        else:
            request_id, _, verb = rest[len(b"invocation/") :].rpartition(b"/")
            self._answer(exchange, request_id.decode("latin-1"), verb, error_type, body)

    def _answer(
        self, exchange: Exchange, request_id: str, verb: bytes, error_type: str, body
    ) -> None:
        invocation = self.invocation
        if invocation is None or invocation.request_id != request_id:
            _reply(exchange, 400, _error("InvalidRequestID", "Invalid request ID"))
            return
        self.invocation = None
        self.state = RUNNING
        if body is None:
            _reply(
                exchange,
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
        elif verb == b"response":
            _reply(exchange, 202, _ACCEPTED)
            outcome = Outcome(Outcome.RESPONSE, body=body)
        else:
            _reply(exchange, 202, _ACCEPTED)
            outcome = Outcome(Outcome.ERROR, body=body, error_type=error_type)
        self.owner.api_result(self, invocation, outcome)

    def _init_error(self, exchange: Exchange, error_type: str, body: bytes | None) -> None:
        _reply(exchange, 202, _ACCEPTED)
        outcome = Outcome(
            Outcome.ERROR, body=body or b"", error_type=error_type or "Runtime.InitError"
        )
        self.state = FAILED
        self.owner.api_init_error(self, outcome)


class _RuntimeConnection(HttpProtocol):
    """A connection to the Runtime API, accepted only from a process of the server's own user.

    The runtime is the server's child and runs as its user; any other local
    user (`nobody` polling `/proc/net/tcp` for new listeners) is refused
    before a byte is read, so it can neither take an invocation (and the
    client's `Authorization` header with it) nor post `init/error`. Processes
    of the same user could read the server's memory anyway (ptrace): they are
    inside the trust boundary.
    """

    __slots__ = ()

    def connection_made(self, transport: asyncio.Transport) -> None:
        local = transport.get_extra_info("sockname")
        remote = transport.get_extra_info("peername")
        uid = peer_uid(local, remote) if local and remote else None
        if uid != os.geteuid():
            who = f"uid {uid}" if uid is not None else "an unknown user"
            diag(f"Runtime API {local[0]}:{local[1]}: refused a connection from {who}")
            self.closing = True
            transport.abort()
            return
        super().connection_made(transport)


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


def _reply(
    exchange: Exchange, status: int, body: bytes, extra: bytes = b"", content_type: bytes = _JSON
) -> None:
    """Answer with `body` and our own (trusted) header lines."""
    response = Response(body, status)
    response.raw_headers = b"Content-Type: %s\r\n%s" % (content_type, extra)
    response.typed = True
    exchange.respond(response)
