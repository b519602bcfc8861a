"""Native libraries through the original C interface, built with gcc during the run."""

from __future__ import annotations

import re
import threading

import pytest
import requests
from conftest import build_library, wait_until

LOG_LINE = re.compile(
    r'^127\.0\.0\.1:\d+ - - "(\S+) (\S+) HTTP/1\.[01]" (\d{3}) ttfb (\d+\.\d{3})ms (\d+) '
    r"ttlb (\d+\.\d{3})ms \(pre-alloc: (\d+), alloc: (\d+)\)$"
)


@pytest.fixture
def libs(tmp_path):
    folder = tmp_path / "libs"
    for name in (
        "layout_only",
        "bad_header",
        "bad_status",
        "null_response",
        "no_symbol",
        "deinit_counter",
        "crash",
    ):
        build_library(f"{name}.c", folder / f"lib{name}.so")
    return folder


def test_sample_library_behaviours(start_server, examples_built):
    server = start_server(
        f"Host: iam / = {examples_built / 'libsample.so'}\n/ = {examples_built / 'libsample.so'}\n"
    )
    get = lambda **h: requests.get(server.url + "/", headers=h)  # noqa: E731
    assert get(Host="iam.example").text == "iam response"
    assert get(**{"x-slow": "50"}).text == "i am slow\n\n"
    logged = get(**{"x-log-this": "hello"})
    assert logged.text.startswith("hello")
    assert get(**{"x-status": "418"}).status_code == 418
    thrown = get(**{"x-log-this": "partial", "x-throw": "1"})
    assert thrown.status_code == 500 and thrown.text.startswith("partial")
    plain = get()
    assert plain.text == f" {len(plain.request.headers) + 1}"  # + Host, added at send time
    assert plain.headers["X-custom-foo"] == "bar"
    assert plain.headers["Content-Type"] == "text/plain"  # added: the library sets none


def test_other_languages_and_own_content_type(start_server, examples_built):
    server = start_server(
        f"/c = {examples_built / 'libhello-c.so'}\n/rust = {examples_built / 'libhello-rust.so'}\n"
    )
    c = requests.get(server.url + "/c")
    assert c.text == "hello from C" and c.headers["Content-Type"].startswith("text/plain; charset")
    rust = requests.post(server.url + "/rust/x?y=1")
    assert rust.text == "hello from Rust: POST /rust/x?y=1"


def test_library_built_from_struct_layout_alone(start_server, libs):
    """layout_only.c declares its own structs (no flexilib.h): a header drift cannot hide."""
    server = start_server(f"/ = {libs / 'liblayout_only.so'}\n")
    response = requests.post(
        server.url + "/path?q=1",
        data=b"body\x00bytes",
        headers={"X-One": "1", "x-reason": "Fine Thanks", "x-status": "202"},
    )
    assert response.status_code == 202 and response.reason == "Fine Thanks"
    assert response.headers["X-Layout"] == "ok"
    first, *rest = response.content.split(b"\n")
    assert first == (
        b"method=POST target=/path?q=1 headers=%d body=10 nul=1"
        % (len(response.request.headers) + 1)
    )
    assert b"X-One: 1" in rest
    assert response.content.endswith(b"body\x00bytes")


@pytest.mark.parametrize("where", ["value", "name", "nul", "lf"])
def test_header_with_cr_lf_nul_is_500(start_server, libs, where):
    server = start_server(f"/ = {libs / 'libbad_header.so'}\n")
    headers = {} if where == "value" else {"x-bad-where": where}
    response = requests.get(server.url, headers=headers)
    assert response.status_code == 500
    assert "bad" not in response.headers and "Injected" not in response.text
    server.wait_for_log("CR, LF or NUL")


@pytest.mark.parametrize(
    "status, expected", [(None, 500), ("99", 500), ("1000", 500), ("999", 999)]
)
def test_status_outside_100_999_is_500(start_server, libs, status, expected):
    server = start_server(f"/ = {libs / 'libbad_status.so'}\n")
    response = requests.get(server.url, headers={"x-status": status} if status else {})
    assert response.status_code == expected
    if expected == 500:
        server.wait_for_log("outside 100-999")


def test_null_response_is_500(start_server, libs):
    server = start_server(f"/ = {libs / 'libnull_response.so'}\n")
    assert requests.get(server.url).status_code == 500
    server.wait_for_log("handle_request returned NULL")
    assert requests.get(server.url).status_code == 500  # and the server keeps serving


def test_missing_symbol_and_missing_file_then_next_request_retries(start_server, libs, tmp_path):
    late = tmp_path / "late.so"
    server = start_server(f"/sym = {libs / 'libno_symbol.so'}\n/late = {late}\n")
    response = requests.get(server.url + "/sym")
    assert response.status_code == 503
    server.wait_for_log(re.escape(str(libs / "libno_symbol.so")) + ".*no handle_request symbol")
    assert requests.get(server.url + "/late").status_code == 503
    server.wait_for_log(re.escape(str(late)) + ": no such file")
    build_library("layout_only.c", late)
    assert requests.get(server.url + "/late").status_code == 200  # tried again, now it loads


def test_request_deinit_after_copy_on_the_same_thread(start_server, libs):
    server = start_server(
        f"/ = {libs / 'libdeinit_counter.so'}\n", env={"SERVER_THREAD_COUNT": "4"}
    )
    bodies = []

    def hit():
        with requests.Session() as session:
            for _ in range(25):
                bodies.append(session.get(server.url).text)

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(bodies) == 100
    for body in bodies:
        assert "#" not in body  # deinit overwrites with '#': we copied before calling it
        fields = dict(item.split("=") for item in body.split())
        assert fields["same_thread"] == "1" and fields["wrong_thread"] == "0"
        assert fields["missed"] == "0"


def test_access_log_line_format(start_server, examples_built):
    server = start_server(f"/ = {examples_built / 'libsample.so'}\n")
    requests.get(server.url + "/x?y=1", headers={"x-slow": "20"})
    requests.get(server.url + "/nothing-here", headers={"x-status": "503"})
    lines = wait_until(lambda: len(server.access_lines()) >= 2 and server.access_lines())
    first = LOG_LINE.match(lines[0])
    assert first, lines[0]
    method, target, status, ttfb, size, ttlb, prealloc, alloc = first.groups()
    assert (method, target, status, size) == ("GET", "/x?y=1", "200", "11")
    assert float(ttfb) >= 20.0 and float(ttlb) >= float(ttfb)
    assert 0 < int(prealloc) <= 8192 and int(alloc) >= 11
    assert LOG_LINE.match(lines[1]).group(3) == "503"


def test_request_bigger_than_the_preallocation(start_server, libs):
    server = start_server(f"/ = {libs / 'liblayout_only.so'}\n", "--prealloc-kb", "1")
    big = "v" * 3000
    response = requests.get(server.url, headers={"X-Big": big})
    assert response.status_code == 200 and f"X-Big: {big}".encode() in response.content
    line = wait_until(lambda: server.access_lines())[-1]
    prealloc, alloc = map(int, LOG_LINE.match(line).groups()[6:])
    assert prealloc == 0 and alloc > 3000  # did not fit the 1 KiB buffer: allocated for it
