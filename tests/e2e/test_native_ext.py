"""flexilib._native, the C extension behind native handlers, against libraries built with gcc.

Most tests call `_native.call` directly with function addresses from ctypes, so each
behaviour of the extension is checked without a server in the way.
"""

from __future__ import annotations

import ctypes
import threading
import time

import pytest
from conftest import REPO, build_library

from flexilib.config import HandlerSpec
from flexilib.kinds.native import _native
from flexilib.kinds.native.handler import NativeHandler
from flexilib.request import Request
from flexilib.runtime.handler import HandlerError

# A test library that answers with the request's headers as its response headers, so a
# test picks exactly what the extension must validate, drop or add. Request headers named
# x-null-* make the copied header, the body or the header array a NULL pointer with a
# non-zero length. `deinits()` counts request_deinit calls.
REFLECT_C = r"""
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "flexilib.h"

static atomic_size_t deinit_calls;
static __thread flexilib_response response;
static __thread flexilib_header *headers;
static __thread char *bytes;
static char body[] = "reflected";

size_t deinits(void);
size_t deinits(void)
{
    return atomic_load(&deinit_calls);
}

static int is(const flexilib_header *h, const char *name)
{
    return h->name_len == strlen(name) && memcmp(h->name_ptr, name, h->name_len) == 0;
}

flexilib_response *handle_request(flexilib_request *req)
{
    size_t total = 1;
    for (size_t i = 0; i < req->headers_len; i++)
        total += req->headers[i].name_len + req->headers[i].value_len;
    headers = malloc(sizeof *headers * (req->headers_len + 1));
    bytes = malloc(total);
    if (headers == NULL || bytes == NULL)
        return NULL;
    response = (flexilib_response){body, sizeof body - 1, headers, req->headers_len, 0, NULL, 0};
    char *at = bytes;
    for (size_t i = 0; i < req->headers_len; i++) {
        const flexilib_header *h = &req->headers[i];
        headers[i] = (flexilib_header){at, h->name_len, at + h->name_len, h->value_len};
        memcpy(at, h->name_ptr, h->name_len);
        memcpy(at + h->name_len, h->value_ptr, h->value_len);
        at += h->name_len + h->value_len;
        if (is(h, "x-null-name"))
            headers[i].name_ptr = NULL;
        if (is(h, "x-null-value"))
            headers[i].value_ptr = NULL;
        if (is(h, "x-null-body"))
            response.ptr = NULL;
        if (is(h, "x-null-headers"))
            response.headers = NULL;
    }
    return &response;
}

void request_deinit(void)
{
    free(headers);
    free(bytes);
    headers = NULL;
    bytes = NULL;
    atomic_fetch_add(&deinit_calls, 1);
}
"""

REQUEST_SIZE = 64  # flexilib_request: 4 (pointer, size_t) pairs
HEADER_SIZE = 32  # flexilib_header: 2 (pointer, size_t) pairs


class Lib:
    """A library opened with ctypes, called through the extension."""

    def __init__(self, path):
        self.cdll = ctypes.CDLL(str(path))
        self.handle = ctypes.cast(self.cdll.handle_request, ctypes.c_void_p).value
        deinit = getattr(self.cdll, "request_deinit", None)
        self.deinit = ctypes.cast(deinit, ctypes.c_void_p).value if deinit is not None else 0

    def __call__(self, headers=(), method=b"GET", target=b"/", body=b""):
        return _native.call(self.handle, self.deinit, method, target, list(headers), body)


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("native_ext")
    source = folder / "reflect.c"
    source.write_text(REFLECT_C)
    built = {"reflect": Lib(build_library(source, folder / "libreflect.so"))}
    built["sample"] = Lib(build_library(REPO / "examples" / "c" / "sample.c", folder / "s.so"))
    built["hello"] = Lib(build_library(REPO / "examples" / "c" / "hello.c", folder / "h.so"))
    for name in ("layout_only", "bad_header", "bad_status", "null_response", "deinit_counter"):
        built[name] = Lib(build_library(f"{name}.c", folder / f"lib{name}.so"))
    return built


@pytest.fixture
def small_buffer():
    """A 1 KiB per-thread buffer for the test, the default 8 KiB again after it."""
    _native.set_preallocation(1)
    yield 1024
    _native.set_preallocation(8)


def test_valid_response_and_status_0_is_200(libs):
    status, reason, body, raw, typed, elapsed, prealloc, alloc = libs["sample"](
        [(b"Host", b"127.0.0.1:8069"), (b"User-Agent", b"wrk")]
    )
    assert (status, reason, body) == (200, None, b" 2")
    assert (raw, typed) == (b"X-custom-foo: bar\r\n", False)  # the writer adds the default
    assert 0 < elapsed < 1
    # request + 2 headers + "/" + "GET\0" + the header bytes
    assert prealloc == REQUEST_SIZE + 2 * HEADER_SIZE + 1 + 4 + 4 + 14 + 10 + 3
    assert alloc == len(body) + len(raw)


def test_request_layout_status_and_reason(libs):
    status, reason, body, raw, *_ = libs["layout_only"](
        [(b"X-One", b"1"), (b"x-status", b"202"), (b"x-reason", b"Fine Thanks")],
        method=b"POST",
        target=b"/path?q=1",
        body=b"body\x00bytes",
    )
    assert (status, reason) == (202, "Fine Thanks")
    assert raw == b"X-Layout: ok\r\n"
    assert body == (
        b"method=POST target=/path?q=1 headers=3 body=10 nul=1\n"
        b"X-One: 1\nx-status: 202\nx-reason: Fine Thanks\nbody\x00bytes"
    )


@pytest.mark.parametrize("status", [b"99", b"1000", b"18446744073709551615"])
def test_status_outside_100_999_is_refused(libs, status):
    with pytest.raises(_native.ResponseError, match=r"status \d+ outside 100-999"):
        libs["bad_status"]([(b"x-status", status)])


@pytest.mark.parametrize("status", [100, 999])
def test_status_edges_are_accepted(libs, status):
    assert libs["bad_status"]([(b"x-status", b"%d" % status)])[0] == status


def test_null_response_is_refused(libs):
    with pytest.raises(_native.ResponseError, match="returned NULL"):
        libs["null_response"]()


@pytest.mark.parametrize(
    "where, message",
    [
        ("crlf", "header 0 'X-Bad': value holds CR, LF or NUL"),
        ("name", "header 0: name is not a token"),
        ("nul", "header 0 'X-Bad': value holds CR, LF or NUL"),
        ("lf", "header 0 'X-Bad': value holds CR, LF or NUL"),
    ],
)
def test_cr_lf_nul_in_a_header_is_refused(libs, where, message):
    with pytest.raises(_native.ResponseError, match=message):
        libs["bad_header"]([(b"x-bad-where", where.encode())])


@pytest.mark.parametrize("reason", [b"Bad\r\nX-Injected: 1", b"a\nb", b"a\x00b"])
def test_cr_lf_nul_in_the_reason_is_refused(libs, reason):
    with pytest.raises(_native.ResponseError, match="reason phrase holds CR, LF or NUL"):
        libs["layout_only"]([(b"x-reason", reason)])


def test_empty_header_name_is_refused(libs):
    with pytest.raises(_native.ResponseError, match="header 1 has an empty name"):
        libs["reflect"]([(b"X-Fine", b"1"), (b"", b"value")])


@pytest.mark.parametrize(
    "headers, message",
    [
        ([(b"x-null-name", b"v")], "header 0 has a NULL pointer with a non-zero length"),
        ([(b"A", b""), (b"x-null-value", b"v")], "header 1 has a NULL pointer"),
        ([(b"x-null-body", b"")], "body or reason is NULL with a non-zero length"),
        ([(b"x-null-headers", b"")], "headers is NULL with headers_len 1"),
    ],
)
def test_null_pointer_with_a_length_is_refused(libs, headers, message):
    with pytest.raises(_native.ResponseError, match=message):
        libs["reflect"](headers)


def test_framing_headers_dropped(libs):
    raw, typed = libs["reflect"](
        [
            (b"X-First", b"1"),
            (b"CONTENT-LENGTH", b"999"),
            (b"transfer-encoding", b"chunked"),
            (b"Connection", b"close"),
            (b"X-Empty", b""),
            (b"Content-Lengthy", b"kept"),
        ]
    )[3:5]
    assert raw == b"X-First: 1\r\nX-Empty: \r\nContent-Lengthy: kept\r\n" and not typed


def test_own_content_type_is_reported(libs):
    assert libs["reflect"]([(b"content-TYPE", b"application/json")])[3:5] == (
        b"content-TYPE: application/json\r\n",
        True,
    )
    assert libs["hello"]()[3:5] == (b"Content-Type: text/plain; charset=utf-8\r\n", True)


def test_request_exactly_filling_the_buffer_then_one_byte_more(libs, small_buffer):
    fixed = REQUEST_SIZE + HEADER_SIZE + len(b"/") + len(b"GET\0") + len(b"X-Fill")
    fits = libs["reflect"]([(b"X-Fill", b"v" * (small_buffer - fixed))])
    assert fits[6:] == (small_buffer, len(fits[2]) + len(fits[3]))
    over = libs["reflect"]([(b"X-Fill", b"v" * (small_buffer - fixed + 1))])
    assert over[6:] == (0, small_buffer + 1 + len(over[2]) + len(over[3]))


def test_big_request_beyond_the_buffer_reaches_the_library_intact(libs, small_buffer):
    value = bytes(range(32, 127)) * 100  # ~9.5 KB, far beyond the 1 KiB buffer
    body = b"\x00\xff" * 50_000
    status, _, echoed, raw, _, _, prealloc, alloc = libs["layout_only"](
        [(b"X-Big", value)], method=b"PUT", target=b"/big", body=body
    )
    assert status == 200 and prealloc == 0
    assert alloc == REQUEST_SIZE + HEADER_SIZE + 4 + 4 + 5 + len(value) + len(echoed) + len(raw)
    assert echoed == b"method=PUT target=/big headers=1 body=100000 nul=1\nX-Big: %s\n%s" % (
        value,
        body,
    )


def test_concurrent_calls_run_without_the_gil(libs):
    """Four 150 ms calls on four threads: they overlap, so the wall time is below their sum."""
    results = []
    barrier = threading.Barrier(4)

    def slow():
        barrier.wait()
        results.append(libs["sample"]([(b"x-slow", b"150")]))

    threads = [threading.Thread(target=slow) for _ in range(4)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - start
    assert [r[2] for r in results] == [b"i am slow\n\n"] * 4
    elapsed = [r[5] for r in results]
    assert all(e >= 0.150 for e in elapsed)
    assert wall < sum(elapsed)


def test_request_deinit_on_the_same_thread_after_the_copy(libs):
    bodies = []

    def hit():
        for _ in range(200):
            bodies.append(libs["deinit_counter"]()[2])

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fields = [dict(f.split("=") for f in body.decode().split()) for body in bodies]
    assert all(b"#" not in body for body in bodies)  # deinit overwrites: we copied first
    assert all(f["same_thread"] == "1" and int(f["calls"]) == int(f["deinits"]) + 1 for f in fields)
    last = max(fields, key=lambda f: int(f["total_calls"]))
    assert last["total_calls"] == "800" and last["wrong_thread"] == last["missed"] == "0"


def test_request_deinit_called_even_for_a_refused_response(libs):
    count = libs["reflect"].cdll.deinits
    count.restype = ctypes.c_size_t
    before = count()
    libs["reflect"]([(b"X-Fine", b"1")])
    with pytest.raises(_native.ResponseError):
        libs["reflect"]([(b"X-Bad", b"a\r\nb")])
    with pytest.raises(_native.ResponseError):
        libs["reflect"]([(b"x-null-body", b"")])
    assert count() == before + 3


def test_bad_arguments_raise_before_calling(libs):
    with pytest.raises(TypeError, match="headers must be"):
        libs["reflect"]([("str", "str")])
    with pytest.raises(TypeError, match="6 to 8 arguments"):
        _native.call(libs["reflect"].handle)
    with pytest.raises(ValueError, match="at least 1 KiB"):
        _native.set_preallocation(0)


def test_native_handler_builds_the_response_and_names_the_library(libs, tmp_path):
    path = str(build_library("layout_only.c", tmp_path / "liblayout.so"))
    handler = NativeHandler(HandlerSpec("native", path, path))
    handler.load()
    try:
        response = handler.call(
            Request(b"GET", b"/x", [(b"x-status", b"201"), (b"x-reason", b"Made")], b"")
        )
        assert (response.status, response.reason) == (201, "Made")
        assert response.raw_headers == b"X-Layout: ok\r\n" and not response.typed
        assert response.body.startswith(b"method=GET target=/x headers=2 body=0 nul=1\n")
        assert response.elapsed > 0 and response.prealloc > 0
        assert response.alloc == len(response.body) + len(response.raw_headers)
        with pytest.raises(HandlerError, match=f"^{path}: status 5 outside 100-999$"):
            handler.call(Request(b"GET", b"/", [(b"x-status", b"5")]))
    finally:
        handler.close()
