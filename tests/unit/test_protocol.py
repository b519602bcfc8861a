"""The HTTP/1.1 protocol fed bytes through a fake transport, its answers read back as bytes."""

from __future__ import annotations

import asyncio
from email.utils import formatdate

import pytest

from flexilib.http.connections import Connections, http_date
from flexilib.http.exchange import Exchange
from flexilib.http.headers import InvalidResponse
from flexilib.http.protocol import AWAITING_REQUEST, HttpProtocol
from flexilib.response import Response
from flexilib.settings import Limits


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.out += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def take(self) -> bytes:
        data, self.out = bytes(self.out), bytearray()
        return data


class App:
    """Answers `hello <target>` at once, unless `hold` is set (then answers wait in `held`)."""

    def __init__(self, stream: bool = False, hold: bool = False) -> None:
        self.stream = stream
        self.hold = hold
        self.held: list[Exchange] = []
        self.finished_: list[Exchange] = []

    def head(self, exchange: Exchange) -> bool:
        return self.stream

    def start(self, exchange: Exchange) -> None:
        if self.hold:
            self.held.append(exchange)
        else:
            exchange.respond(Response(b"hello " + exchange.request.raw_target))

    def finished(self, exchange: Exchange) -> None:
        self.finished_.append(exchange)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def connect(loop, app=None, **limits):
    clock = Clock()
    connections = Connections(Limits(**limits), clock)
    protocol = HttpProtocol(app or App(), connections, loop)
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport, connections, clock


def responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split bytes holding Content-Length-framed responses into (status, headers, body)."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:length]))
        data = rest[length:]
    return out


def test_a_request_gets_its_answer_with_framing_and_default_headers(loop):
    protocol, transport, _, _ = connect(loop)
    protocol.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    [(status, headers, body)] = responses(transport.take())
    assert (status, body) == (200, b"hello /a")
    assert headers["content-type"] == "text/plain"
    assert headers["server"] == "flexilib" and "gmt" in headers["date"].lower()
    assert headers["content-length"] == "8" and "connection" not in headers
    assert not transport.closed and protocol.phase == AWAITING_REQUEST


@pytest.mark.parametrize("seconds", [0, 784111777, 951782400.5, 1709164800, 4102444799])
def test_the_date_header_is_the_imf_fixdate_email_utils_would_write(seconds):
    assert http_date(seconds).decode() == formatdate(seconds, usegmt=True)


def test_pipelined_requests_are_answered_in_order(loop):
    app = App(hold=True)
    protocol, transport, _, _ = connect(loop, app)
    protocol.data_received(
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert [e.request.raw_target for e in app.held] == [b"/1"]  # the others wait their turn
    app.held.pop().respond(Response(b"one"))
    app.held.pop().respond(Response(b"two"))
    app.held.pop().respond(Response(b"three"))
    assert [r[2] for r in responses(transport.take())] == [b"one", b"two", b"three"]
    assert [e.request.raw_target for e in app.finished_] == [b"/1", b"/2", b"/3"]


def test_head_gets_no_body_but_its_length(loop):
    protocol, transport, _, _ = connect(loop)
    protocol.data_received(b"HEAD /abc HTTP/1.1\r\nHost: x\r\n\r\n")
    data = transport.take()
    assert data.endswith(b"Content-Length: 10\r\n\r\n")


def test_connection_close_and_http10(loop):
    protocol, transport, _, _ = connect(loop)
    protocol.data_received(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    [(_, headers, _)] = responses(transport.take())
    assert headers["connection"] == "keep-alive" and not transport.closed
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    [(_, headers, _)] = responses(transport.take())
    assert headers["connection"] == "close" and transport.closed


def test_chunked_body_is_buffered_whole_and_100_continue_sent(loop):
    app = App(hold=True)
    protocol, transport, _, _ = connect(loop, app)
    protocol.data_received(
        b"POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    )
    assert transport.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
    protocol.data_received(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert app.held[0].request.body == b"abcde"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    ],
)
def test_bad_requests_are_answered_and_closed(loop, data, status):
    app = App()
    protocol, transport, _, _ = connect(loop, app, max_header_bytes=16384, max_body_bytes=1000)
    protocol.data_received(data)
    [(got, headers, _)] = responses(transport.take())
    assert got == status and headers["connection"] == "close" and transport.closed
    assert [e.status for e in app.finished_] == [status]  # logged like any request


def test_a_rejected_request_whose_line_was_read_is_logged_with_it(loop):
    app = App()
    protocol, transport, _, _ = connect(loop, app, max_body_bytes=10)
    protocol.data_received(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
    [exchange] = app.finished_
    assert (exchange.request.raw_method, exchange.request.raw_target) == (b"POST", b"/upload")
    assert exchange.status == 413


@pytest.mark.parametrize(
    ("chunks", "logged"),
    [
        ([b"GET /big?x=1 HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n"], (b"GET", b"/big?x=1")),
        ([b"GET /big HTTP/1.1\r\nX: ", b"a" * 100_000], (b"GET", b"/big")),  # still arriving
        ([b"GARBAGE\r\n\r\n"], (b"-", b"-")),
    ],
)
def test_a_request_rejected_in_its_headers_is_logged_with_its_line(loop, chunks, logged):
    app = App()
    protocol, transport, _, _ = connect(loop, app, max_header_bytes=16384)
    for chunk in chunks:
        protocol.data_received(chunk)
    [exchange] = app.finished_
    assert (exchange.request.raw_method, exchange.request.raw_target) == logged


def test_a_request_behind_one_owed_is_rejected_after_it(loop):
    app = App(hold=True)
    protocol, transport, _, _ = connect(loop, app)
    protocol.data_received(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n")
    assert transport.take() == b""  # the 400 waits for the answer owed before it
    app.held.pop().respond(Response(b"first"))
    statuses = [r[0] for r in responses(transport.take())]
    assert statuses == [200, 400] and transport.closed


def test_timeouts_run_on_the_listener_clock(loop):
    protocol, transport, connections, clock = connect(loop, header_timeout=5, keepalive_timeout=15)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a header section, cut short
    clock.now += 6
    connections.tick()
    [(status, _, _)] = responses(transport.take())
    assert status == 408 and transport.closed

    protocol, transport, connections, clock = connect(loop, keepalive_timeout=15)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    transport.take()
    clock.now += 14
    connections.tick()
    assert not transport.closed
    clock.now += 2
    connections.tick()
    assert transport.closed and transport.take() == b""  # idle: closed without a word


def test_an_invalid_response_is_refused_before_a_byte_is_written(loop):
    app = App(hold=True)
    protocol, transport, _, _ = connect(loop, app)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    exchange = app.held.pop()
    with pytest.raises(InvalidResponse):
        exchange.respond(Response(b"x", headers=[("X-Evil", "a\r\nSet-Cookie: b")]))
    with pytest.raises(InvalidResponse):
        exchange.respond(Response(b"x", status=42))
    assert transport.take() == b""
    exchange.respond(Response(b"fine", headers=[("Content-Type", "text/html")]))
    [(status, headers, body)] = responses(transport.take())
    assert (status, headers["content-type"], body) == (200, "text/html", b"fine")


def test_streamed_body_pauses_reading_and_resumes_when_read(loop):
    app = App(stream=True, hold=True)
    protocol, transport, _, _ = connect(loop, app)
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 400000\r\n\r\n")
    exchange = app.held.pop()  # started at once: a streamed exchange reads as it arrives
    protocol.data_received(b"a" * 300_000)
    assert not transport.reading  # over the high-water mark

    async def read_all() -> int:
        total = 0
        while data := await exchange.receive():
            total += len(data)
            if total == 300_000:
                assert transport.reading
                protocol.data_received(b"b" * 100_000)
        return total

    assert loop.run_until_complete(read_all()) == 400_000
    exchange.start(200, [(b"Content-Type", b"text/plain")], length=2, body=b"ok")
    exchange.finish()
    [(status, _, body)] = responses(transport.take())
    assert (status, body) == (200, b"ok") and app.finished_ == [exchange]


def test_lost_connection_tells_the_exchange_being_answered(loop):
    app = App(hold=True)
    protocol, transport, _, _ = connect(loop, app)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    exchange = app.held.pop()
    lost = []
    exchange.on_lost = lost.append
    protocol.connection_lost(None)
    assert lost == [exchange]
    exchange.respond(Response(b"late"))  # an answer for a closed connection: logged, not written
    assert transport.take() == b"" and app.finished_ == [exchange]


def test_too_many_connections_are_refused(loop):
    clock = Clock()
    connections = Connections(Limits(max_connections=1), clock)
    first = HttpProtocol(App(), connections, loop)
    first.connection_made(FakeTransport())
    second = HttpProtocol(App(), connections, loop)
    transport = FakeTransport()
    second.connection_made(transport)
    assert transport.closed and len(connections.open) == 1


def test_trailers_are_counted_and_never_become_headers(loop):
    app = App(hold=True)
    protocol, transport, _, _ = connect(loop, app, max_header_bytes=300)
    protocol.data_received(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-User: admin\r\n\r\n"
    )
    [exchange] = app.held
    assert exchange.request.body == b"abc"
    assert exchange.request.headers.get("x-user") is None
    exchange.respond(Response(b"ok"))
    transport.take()
    protocol.data_received(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        + b"X-Flood: aaaaaaaaaa\r\n" * 20
        + b"\r\n"
    )
    [(status, _, _)] = responses(transport.take())
    assert status == 431 and transport.closed


def test_a_slow_trailer_section_runs_into_the_body_timeout(loop):
    protocol, transport, connections, clock = connect(loop, body_timeout=5)
    protocol.data_received(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-A: 1\r\n"
    )
    clock.now += 6
    connections.tick()
    [(status, _, _)] = responses(transport.take())
    assert status == 408


def test_the_path_is_normalised_and_the_raw_target_kept(loop):
    app = App(hold=True)
    protocol, transport, _, _ = connect(loop, app)
    protocol.data_received(b"GET /a/./b/../%63//d?x=/../y HTTP/1.1\r\nHost: x\r\n\r\n")
    [exchange] = app.held
    assert exchange.request.raw_target == b"/a/./b/../%63//d?x=/../y"
    assert exchange.request.normalized_path == b"/a/c/d"


@pytest.mark.parametrize(
    ("value", "length"), [(b"5 ", 5), (b"5\t", 5), (b" 5", 5), (b"5x", -1), (b"", -1)]
)
def test_content_length_is_read_as_llhttp_reads_it(loop, value, length):
    protocol, _, _, _ = connect(loop)
    protocol.on_message_begin()
    protocol.on_header(b"Content-Length", value)
    assert protocol.length == length


def test_a_client_that_reads_nothing_is_dropped_at_the_send_timeout(loop):
    app = App(hold=True)
    protocol, transport, connections, clock = connect(loop, app, send_timeout=60)
    protocol.data_received(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
    protocol.pause_writing()  # the answer filled the transport's buffer
    assert not transport.reading  # and no more requests are read meanwhile
    clock.now += 30
    connections.tick()
    protocol.resume_writing()  # the client read some: the clock starts again
    assert transport.reading
    protocol.pause_writing()
    clock.now += 59
    connections.tick()
    assert not transport.closed
    clock.now += 2
    connections.tick()
    assert transport.closed


def test_pauses_for_different_reasons_do_not_undo_each_other(loop):
    protocol, transport, _, _ = connect(loop)
    protocol.pause_writing()
    protocol.pause_reading()  # an exchange's body buffer is full
    protocol.resume_writing()
    assert not transport.reading  # still paused: the body buffer has not drained
    protocol.resume_reading()
    assert transport.reading


def test_a_chunk_header_alone_then_its_data_is_no_trailer(loop):
    app = App(hold=True)
    protocol, transport, _, _ = connect(loop, app, max_header_bytes=256)
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(3):  # each chunk's header and data arrive apart, as a streaming client sends
        protocol.data_received(b"30000\r\n")
        protocol.data_received(b"d" * 0x30000 + b"\r\n")
    protocol.data_received(b"0\r\n\r\n")
    [exchange] = app.held
    assert len(exchange.request.body) == 3 * 0x30000 and not transport.closed
