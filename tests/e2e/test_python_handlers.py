"""Python handler modules: sync and async, the request object, errors, sibling imports."""

from __future__ import annotations

import json

import pytest
import requests

HANDLERS = {
    "sync.py": """
from flexilib import Response

def handle_request(request):
    return Response(
        "sync " + request.method + " " + request.path,
        status=201,
        headers=[("X-Tag", "a"), ("X-Tag", "b")],
        reason="Made It",
    )
""",
    "asyncmod.py": """
import asyncio

async def handle_request(request):
    await asyncio.sleep(0)
    return b"async " + request.body
""",
    "text.py": "def handle_request(request):\n    return 'plain text'\n",
    "inspector.py": """
import json
from flexilib import Response

def handle_request(request):
    h = request.headers
    return Response(json.dumps({
        "method": request.method, "target": request.target, "path": request.path,
        "query": request.query, "x_multi": h.getall("x-multi"), "x_first": h.get("X-MULTI"),
        "has": "x-multi" in h, "missing": h.get("nope", "default"), "body": request.body.decode(),
        "client": request.client[0], "version": request.http_version,
    }), content_type="application/json")
""",
    "boom.py": "def handle_request(request):\n    raise ValueError('kaboom')\n",
    "wrongtype.py": "def handle_request(request):\n    return 42\n",
    "syntax.py": "def handle_request(request)\n    return 'x'\n",
    "injection.py": """
from flexilib import Response

def handle_request(request):
    return Response("x", headers={"X-Evil": "a\\r\\nSet-Cookie: stolen=1"})
""",
    "named.py": "def other(request):\n    return 'named function'\n",
    "badheader.py": "from flexilib import Response\n\ndef handle_request(request):\n    return Response('x', headers={'X-Arrow': '\u2192'})\n",
    "badstatus.py": "from flexilib import Response\n\ndef handle_request(request):\n    return Response('x', status='200')\n",
    "usehelper.py": "import helper_mod\n\ndef handle_request(request):\n    return helper_mod.greeting()\n",
    "helper_mod.py": "def greeting():\n    return 'from a sibling module'\n",
}


@pytest.fixture
def server(start_server, tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    for name, text in HANDLERS.items():
        (folder / name).write_text(text)
    config = "\n".join(
        [
            "/sync = sync.py",
            "/async = asyncmod.py",
            "/text = text.py",
            "/inspect = inspector.py",
            "/boom = boom.py",
            "/wrongtype = wrongtype.py",
            "/syntax = syntax.py",
            "/injection = injection.py",
            "/named = python:named.py:other",
            "/helper = usehelper.py",
            "/badheader = badheader.py",
            "/badstatus = badstatus.py",
        ]
    )
    return start_server(config + "\n", folder=folder)


def test_sync_handler_response_object(server):
    response = requests.get(server.url + "/sync/x?y")
    assert response.status_code == 201 and response.reason == "Made It"
    assert response.text == "sync GET /sync/x"
    assert response.raw.headers.getlist("X-Tag") == ["a", "b"]
    assert response.headers["Content-Type"] == "text/plain"


def test_async_handler_and_bytes_result(server):
    assert requests.post(server.url + "/async", data=b"payload").content == b"async payload"


def test_str_result_is_200_text_plain(server):
    response = requests.get(server.url + "/text")
    assert response.status_code == 200 and response.text == "plain text"
    assert response.headers["Content-Type"] == "text/plain"


def test_request_object(server):
    response = requests.post(
        server.url + "/inspect/a/b?k=v&k=w",
        data="the body",
        headers={"X-Multi": "1"},
    )
    data = response.json()
    assert data["method"] == "POST" and data["target"] == "/inspect/a/b?k=v&k=w"
    assert data["path"] == "/inspect/a/b" and data["query"] == "k=v&k=w"
    assert data["body"] == "the body" and data["client"] == "127.0.0.1"
    assert data["version"] == "1.1" and data["has"] is True and data["missing"] == "default"


def test_repeated_headers_are_kept(server):
    import socket

    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"GET /inspect HTTP/1.1\r\nHost: t\r\nX-Multi: 1\r\nx-multi: 2\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    body = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert body["x_multi"] == ["1", "2"] and body["x_first"] == "1"


def test_exception_is_500_with_traceback_logged(server):
    response = requests.get(server.url + "/boom")
    assert response.status_code == 500
    assert "kaboom" not in response.text and "Traceback" not in response.text
    log = server.wait_for_log("ValueError: kaboom")
    assert "Traceback (most recent call last)" in log and "boom.py" in log
    assert requests.get(server.url + "/text").status_code == 200  # still serving


def test_wrong_return_type_is_500(server):
    assert requests.get(server.url + "/wrongtype").status_code == 500
    server.wait_for_log("returned int, not Response, bytes or str")


def test_syntax_error_is_503_and_logged(server):
    assert requests.get(server.url + "/syntax").status_code == 503
    server.wait_for_log("cannot load .*syntax.py: SyntaxError")


def test_header_injection_is_refused(server):
    response = requests.get(server.url + "/injection")
    assert response.status_code == 500 and "stolen" not in response.headers.get("Set-Cookie", "")
    server.wait_for_log("holds CR, LF or NUL")


def test_named_function_and_sibling_import(server):
    assert requests.get(server.url + "/named").text == "named function"
    assert requests.get(server.url + "/helper").text == "from a sibling module"


def test_unencodable_header_or_bad_status_is_500_not_a_hang(server):
    for path in ("/badheader", "/badstatus"):
        assert requests.get(server.url + path, timeout=10).status_code == 500
    server.wait_for_log("not latin-1 text")
    server.wait_for_log("status '200' is not an integer")
    assert requests.get(server.url + "/text", timeout=10).status_code == 200
