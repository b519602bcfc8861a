"""One table of response-head rules, tried against every handler kind that builds a response.

The rules (`flexilib/http/headers.py`) are enforced in Python for the Python
kinds and in C for native libraries; this table is what keeps them one rule.
A refused header is never sent: the client gets a 5xx and the server logs why.
The reverse proxy is not in the table: an upstream's response is parsed by
llhttp, which refuses such bytes as a malformed response (502).
"""

from __future__ import annotations

import pytest
import requests
from conftest import REPO, Server, build_library

HANDLERS = REPO / "tests" / "handlers"

# (name, value, sent as written?)
RULES = [
    ("X-Ok", "v", True),
    ("X-Empty", "", True),
    ("X-Tab", "a\tb", True),
    ("X!#$%&'*+-.^_`|~9", "token characters", True),
    ("X Bad", "space in the name", False),
    ("X:Bad", "colon in the name", False),
    ("X-Bad\r", "CR in the name", False),
    ("X-Bad", "a\r\nInjected: yes", False),
    ("X-Bad", "a\nb", False),
    ("X-Bad", "a\x00b", False),
]
KINDS = ["native", "python", "lambda", "worker"]
PLATFORM_TYPES = {"lambda": "text/plain; charset=utf-8", "worker": "text/plain;charset=UTF-8"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the whole table: every kind behind its own prefix."""
    folder = tmp_path_factory.mktemp("rules")
    lib = build_library("echo_header.c", folder / "libecho_header.so")
    server = Server(
        folder,
        f"/native = {lib}\n"
        f"/python = {HANDLERS / 'echo_header.py'}\n"
        f"/lambda = lambda:{HANDLERS / 'echo_header.py'}:lambda_handler\n"
        f"/worker = worker:{HANDLERS / 'echo_header_worker.py'}\n",
        [],
        {},
    )
    yield server
    server.stop()


def _ask(server, kind: str, name: str, value: str) -> requests.Response:
    query = f"n={name.encode('latin-1').hex()}&v={value.encode('latin-1').hex()}"
    return requests.get(f"{server.url}/{kind}?{query}", timeout=10)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("name", "value", "sent"), RULES)
def test_response_header_rule(server, kind, name, value, sent):
    response = _ask(server, kind, name, value)
    if sent:
        assert response.status_code == 200
        assert response.raw.headers.get(name) == value
    else:
        assert response.status_code >= 500
        assert "Injected" not in response.headers and response.text != "ok"


@pytest.mark.parametrize("kind", KINDS)
def test_content_type_default_and_framing_headers(server, kind):
    plain = _ask(server, kind, "X-Any", "1")
    # `lambda:` and `worker:` type a text body as API Gateway and the Fetch API do
    default = PLATFORM_TYPES.get(kind, "text/plain")
    assert plain.raw.headers.getlist("Content-Type") == [default]
    typed = _ask(server, kind, "content-type", "text/html")
    assert typed.headers["Content-Type"] == "text/html"
    assert typed.raw.headers.getlist("Content-Type") == ["text/html"]
    framed = _ask(server, kind, "Content-Length", "999")
    assert framed.status_code == 200 and framed.headers["Content-Length"] == "2"
