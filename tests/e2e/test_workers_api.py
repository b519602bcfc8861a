"""The Cloudflare Python Workers layer (flexilib.kinds.cloudflare.sdk), driven through `invoke`.

Worker modules are written to files and imported through the `workers` alias,
as the `worker:` handler will load them; `fetch()` talks to a real HTTP server
on 127.0.0.1. The server end to end is covered by the handler's own tests.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flexilib.kinds.cloudflare import sdk as workers
from flexilib.kinds.cloudflare.alias import install_workers_alias
from flexilib.kinds.cloudflare.runner import check_module, invoke
from flexilib.kinds.cloudflare.sdk import Env, Request, Response
from flexilib.kinds.cloudflare.sdk.bindings import bind_env
from flexilib.request import Request as FlexiRequest

SRC = Path(workers.__file__).resolve().parents[4]
_names = itertools.count()


def load_worker(tmp_path: Path, source: str):
    """Import `source` as a worker module file, `workers` resolving to flexilib's."""
    assert install_workers_alias() is True
    path = tmp_path / f"worker_{next(_names)}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wire_request(
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> FlexiRequest:
    if headers is None:
        headers = [("Host", "example.test:8080")]
    raw = [(n.encode(), v.encode()) for n, v in headers]
    return FlexiRequest(method.encode(), target.encode(), raw, body, client=("127.0.0.9", 5555))


def run(module, request: FlexiRequest, env: dict | Env | None = None, host: str = "srv:1"):
    return asyncio.run(invoke(module, request, env or {}, host))


# -- entry point styles -------------------------------------------------------------------


ENTRYPOINT_WORKER = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            data = await request.json()
            return Response.json(
                {
                    "method": request.method,
                    "url": request.url,
                    "agent": request.headers.get("user-agent"),
                    "got": data,
                    "greeting": self.env.GREETING,
                    "same_ctx": self.ctx is not None,
                },
                status=201,
                status_text="Made It",
                headers=[("x-multi", "1"), ("X-Multi", "2"),
                         ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
            )
"""


def test_default_class_entry_point(tmp_path):
    module = load_worker(tmp_path, ENTRYPOINT_WORKER)
    assert check_module(module) == "Default.fetch"
    request = wire_request(
        "POST",
        "/items?x=1&y=2",
        [("Host", "Example.TEST:80"), ("User-Agent", "ua/1"), ("Content-Type", "application/json")],
        b'{"n": 5}',
    )
    response, pending = run(module, request, {"GREETING": "hi"})
    assert pending == []
    assert response.status == 201
    assert response.reason == "Made It"
    assert json.loads(response.body) == {
        "method": "POST",
        "url": "http://example.test/items?x=1&y=2",
        "agent": "ua/1",
        "got": {"n": 5},
        "greeting": "hi",
        "same_ctx": True,
    }
    assert response.headers == [
        ("content-type", "application/json"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("x-multi", "1, 2"),
    ]


def test_on_fetch_with_request_env_ctx(tmp_path):
    module = load_worker(
        tmp_path,
        """
        from workers import Response

        async def on_fetch(request, env, ctx):
            text = await request.text()
            return Response(
                f"{request.method} {text} {env.KEY} {type(ctx).__name__}",
                status=202,
                headers={"X-One": "1"},
            )
        """,
    )
    assert check_module(module) == "on_fetch"
    response, _ = run(module, wire_request("PUT", "/", body=b"payload"), {"KEY": "v"})
    assert (response.status, response.reason) == (202, "Accepted")
    assert response.body == b"PUT payload v Context"
    assert response.headers == [("content-type", "text/plain;charset=UTF-8"), ("x-one", "1")]


def test_on_fetch_taking_only_the_request_and_sync(tmp_path):
    # the runtime calls on_fetch with as many of (request, env, ctx) as it takes
    module = load_worker(
        tmp_path,
        """
        from workers import Response, handler

        @handler
        def on_fetch(request):
            return Response(request.url)
        """,
    )
    response, _ = run(module, wire_request(target="/p", headers=[]), host="127.0.0.1:9999")
    assert response.body == b"http://127.0.0.1:9999/p"


def test_default_takes_precedence_over_on_fetch(tmp_path):
    module = load_worker(
        tmp_path,
        """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            def fetch(self, request):
                return Response("class")

        async def on_fetch(request):
            return Response("function")
        """,
    )
    assert run(module, wire_request())[0].body == b"class"


# -- load-time errors -------------------------------------------------------------------


def test_module_without_entry_point_is_rejected(tmp_path):
    module = load_worker(tmp_path, "def handle_request(request):\n    return 'x'\n")
    with pytest.raises(ValueError, match="is not a Python Worker.*on_fetch"):
        check_module(module)
    with pytest.raises(ValueError):
        run(module, wire_request())


def test_default_that_is_not_an_entrypoint_is_rejected(tmp_path):
    module = load_worker(tmp_path, "class Default:\n    async def fetch(self, request): ...\n")
    with pytest.raises(ValueError, match="WorkerEntrypoint"):
        check_module(module)


def test_handler_returning_something_else_is_an_error(tmp_path):
    module = load_worker(tmp_path, "async def on_fetch(request):\n    return 'text'\n")
    with pytest.raises(TypeError, match="did not return a workers.Response.*str"):
        run(module, wire_request())


# -- the request ----------------------------------------------------------------------


def test_request_url_and_headers():
    request = Request.from_flexilib(
        wire_request(
            "GET",
            "/a%20b?q=1",
            [
                ("Host", "h.test:8443"),
                ("Accept", "text/html"),
                ("accept", "text/plain"),
                ("X-Empty", "  padded  "),
            ],
        ),
        "fallback:1",
    )
    assert request.url == "http://h.test:8443/a%20b?q=1"
    headers = request.headers
    assert headers.get("Accept") == "text/html, text/plain"
    assert headers.get_all("accept") == ["text/html, text/plain"]
    assert headers["x-empty"] == "padded"
    assert headers.get("cf-connecting-ip") == "127.0.0.9"
    assert list(headers) == ["accept", "cf-connecting-ip", "host", "x-empty"]
    assert "HOST" in headers
    assert request.body is None
    assert repr(request) == "Request(method='GET', url='http://h.test:8443/a%20b?q=1')"


def test_request_without_usable_host_header_uses_server_address():
    bad_host = wire_request("GET", "/x", [("Host", "bad host")])
    assert Request.from_flexilib(bad_host, "10.0.0.1:80").url == "http://10.0.0.1/x"
    asterisk = wire_request("OPTIONS", "*", [("Host", "h")])
    assert Request.from_flexilib(asterisk, "s").url == "http://h/"


def test_request_body_readers_are_read_once():
    async def scenario():
        def make(body: bytes) -> Request:
            return Request.from_flexilib(wire_request("POST", "/", body=body), "h")

        request = make(b"\x00\x01abc")
        assert request.body_used is False
        buffer = await request.buffer()
        assert buffer.to_bytes() == b"\x00\x01abc" and buffer.byteLength == 5
        assert request.body_used is True
        with pytest.raises(OSError, match="Body already used"):
            await request.text()
        assert await make(b"raw").bytes() == b"raw"
        assert await make(b"raw").arrayBuffer() == b"raw"
        assert await make(b"\xffok").text() == "\ufffdok"
        assert await make(b'{"a": [1, 2]}').json() == {"a": [1, 2]}
        chunks = [chunk async for chunk in make(b"streamed").body]
        assert chunks == [b"streamed"]

    asyncio.run(scenario())


def test_request_constructor():
    async def scenario():
        request = Request("HTTPS://Example.com:443", method="post", body="hello")
        assert request.method == "POST"
        assert request.url == "https://example.com/"
        assert request.headers["content-type"] == "text/plain;charset=UTF-8"
        assert await request.clone().text() == "hello"
        with pytest.raises(TypeError, match="GET or HEAD"):
            Request("http://example.com/", body="x")
        with pytest.raises(TypeError, match="Invalid URL"):
            Request("/relative")

    asyncio.run(scenario())


# -- the response ---------------------------------------------------------------------


def test_response_bodies_and_default_headers():
    text = Response("héllo").to_flexilib()
    assert text.body == "héllo".encode()
    assert text.headers == [("content-type", "text/plain;charset=UTF-8")]
    assert (text.status, text.reason) == (200, "OK")

    binary = Response(b"\x00\xff", headers={"Content-Type": "application/octet-stream"})
    assert binary.to_flexilib().body == b"\x00\xff"
    assert binary.to_flexilib().headers == [("content-type", "application/octet-stream")]
    assert Response(b"raw").to_flexilib().headers == []

    empty = Response(None, status=204)
    assert empty.body is None and empty.status_text == "No Content"
    assert empty.to_flexilib().body == b""

    odd = Response("x", status=599)
    assert odd.status_text == "" and odd.to_flexilib().reason is None


def test_response_status_text_headers_and_json():
    async def scenario():
        response = Response.json({"field": 42}, status=404, status_text="Nope")
        assert (response.status, response.status_text, response.ok) == (404, "Nope", False)
        assert response.headers == {"content-type": "application/json"}
        assert await response.text() == '{"field": 42}'
        assert repr(Response.json([1, 2, 3])) == (
            "Response(status=200, status_text='OK', content_type='application/json')"
        )
        custom = Response.json("x", headers={"Content-Type": "application/vnd+json"})
        assert custom.headers["content-type"] == "application/vnd+json"
        assert await Response("[1, 2, 3]").json() == [1, 2, 3]
        assert await Response.from_json([True]).json() == [True]

        as_dict = Response("a", headers={"X-A": "1", "X-B": "2"})
        as_pairs = Response("a", headers=[("X-A", "1"), ("X-B", "2")])
        assert as_dict.to_flexilib().headers == as_pairs.to_flexilib().headers

    asyncio.run(scenario())


def test_response_rejects_what_the_runtime_rejects():
    with pytest.raises(TypeError, match="Unsupported type in Response: dict"):
        Response({"a": 1})
    with pytest.raises(ValueError, match="200 to 599"):
        Response("x", status=100)
    with pytest.raises(TypeError, match="null body status"):
        Response("", status=204)
    with pytest.raises(TypeError, match="Invalid header value"):
        Response("x", headers={"X-Evil": "a\r\nInjected: 1"})
    with pytest.raises(TypeError, match="Invalid header name"):
        Response("x", headers=[("bad name", "1")])
    with pytest.raises(TypeError, match="unexpected type for headers"):
        Response("x", headers="x-a: 1")


def test_redirect():
    found = Response.redirect("https://Example.com")
    wire = found.to_flexilib()
    assert (wire.status, wire.reason, wire.body) == (302, "Found", b"")
    assert wire.headers == [("location", "https://example.com/")]
    assert Response.redirect("http://h.test/next?a=1", 301).to_flexilib().headers == [
        ("location", "http://h.test/next?a=1")
    ]
    with pytest.raises(ValueError, match="redirect status"):
        Response.redirect("https://example.com/", 200)
    with pytest.raises(TypeError, match="Invalid URL"):
        Response.redirect("/relative")


def test_response_from_request_body_stream(tmp_path):
    module = load_worker(
        tmp_path,
        """
        from workers import Response

        async def on_fetch(request):
            return Response(request.body, status=200, headers={"X-Echo": "yes"})
        """,
    )
    response, _ = run(module, wire_request("POST", "/", body=b"echo me"))
    assert response.body == b"echo me"
    assert response.headers == [("x-echo", "yes")]


# -- ctx.waitUntil and env --------------------------------------------------------------


WAIT_UNTIL_WORKER = """
    import asyncio
    from workers import Response, WorkerEntrypoint, env, waitUntil

    events = []

    async def later(tag):
        events.append(f"{tag} ran with {env.NAME}")

    async def outer():
        events.append("outer ran")
        waitUntil(later("nested"))  # after the response: starts at once
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            self.ctx.waitUntil(later("first"))
            self.ctx.wait_until(outer())
            self.ctx.passThroughOnException()
            await asyncio.sleep(0)  # a task started here would run now
            events.append("handler returned")
            return Response("done")
"""


def test_wait_until_runs_after_the_response(tmp_path):
    module = load_worker(tmp_path, WAIT_UNTIL_WORKER)

    async def scenario():
        response, pending = await invoke(module, wire_request(), {"NAME": "n1"}, "h")
        assert response.body == b"done"
        assert len(pending) == 2
        assert module.events == ["handler returned"]  # nothing ran yet
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert results == [None, None]
        assert module.events[:3] == ["handler returned", "first ran with n1", "outer ran"]
        await asyncio.sleep(0)  # the nested one was started as a task, not deferred
        assert module.events[3:] == ["nested ran with n1"]

    asyncio.run(scenario())


def test_wait_until_work_is_dropped_when_the_handler_fails(tmp_path):
    module = load_worker(
        tmp_path,
        """
        coros = []

        async def work():
            pass

        async def on_fetch(request, env, ctx):
            coros.append(work())
            ctx.waitUntil(coros[0])
            raise RuntimeError("boom")
        """,
    )
    with pytest.raises(RuntimeError, match="boom"):
        run(module, wire_request())
    assert module.coros[0].cr_frame is None  # closed, so no "never awaited" warning


def test_wait_until_rejects_non_awaitables(tmp_path):
    module = load_worker(
        tmp_path,
        "async def on_fetch(request, env, ctx):\n    ctx.waitUntil(42)\n",
    )
    with pytest.raises(TypeError, match="takes an awaitable"):
        run(module, wire_request())


def test_env_holds_strings_and_missing_names_raise():
    env = Env({"A": "1", "B": 2})
    assert (env.A, env.B) == ("1", "2")
    with pytest.raises(AttributeError):
        _ = env.MISSING
    assert getattr(env, "MISSING", "default") == "default"
    assert repr(env) == "Env(A, B)"


def test_module_level_env_follows_the_running_worker(tmp_path):
    with pytest.raises(RuntimeError, match="only available while flexilib runs a worker"):
        _ = workers.env.X
    with bind_env({"X": "at import"}):
        module = load_worker(
            tmp_path,
            """
            from workers import Response, env

            AT_IMPORT = env.X

            def on_fetch(request):
                return Response(f"{AT_IMPORT} / {env.X}")
            """,
        )
    shared = Env({"X": "per request"})
    assert run(module, wire_request(), shared)[0].body == b"at import / per request"


# -- fetch() over real HTTP -------------------------------------------------------------


class _Upstream(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass

    def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/moved":
            self._reply(302, b"", [("Location", "/target")])
        elif self.path == "/target":
            self._reply(200, b"arrived", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
        else:
            self._reply(404, b"nothing", [("X-Agent", self.headers.get("X-Agent", ""))])

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        echo = {"body": body.decode(), "type": self.headers.get("Content-Type")}
        self._reply(200, json.dumps(echo).encode(), [("Content-Type", "application/json")])


@pytest.fixture
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch(upstream):
    async def scenario():
        followed = await workers.fetch(f"{upstream}/moved")
        assert (followed.status, await followed.text()) == (200, "arrived")
        assert followed.redirected and followed.url == f"{upstream}/target"

        manual = await workers.fetch(f"{upstream}/moved", redirect="manual", cf={"cacheTtl": 5})
        assert manual.status == 302 and manual.headers["location"] == "/target"
        with pytest.raises(TypeError, match="redirect='error'"):
            await workers.fetch(f"{upstream}/moved", redirect="error")

        missing = await workers.fetch(f"{upstream}/none", headers={"X-Agent": "w"})
        assert (missing.status, missing.ok, await missing.text()) == (404, False, "nothing")
        assert missing.headers["x-agent"] == "w"

        posted = await workers.fetch(upstream + "/", method="POST", body="hi")
        assert await posted.json() == {"body": "hi", "type": "text/plain;charset=UTF-8"}

    asyncio.run(scenario())


# -- the `workers` alias --------------------------------------------------------------


def _alias_outcome(tmp_path: Path, fake_package: str | None) -> dict:
    """Run install_workers_alias() in a fresh interpreter, optionally beside a `workers`."""
    path = [str(SRC)]
    if fake_package is not None:
        package = tmp_path / "site" / "workers"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(fake_package)
        (package / "helper.py").write_text("VALUE = 1\n")
        path.insert(0, str(tmp_path / "site"))
    script = textwrap.dedent(
        """
        import json, sys
        from flexilib.kinds.cloudflare.alias import install_workers_alias
        installed = install_workers_alias()
        import workers
        print(json.dumps({
            "installed": installed,
            "module": workers.__name__,
            "leftovers": sorted(n for n in sys.modules if n.startswith("workers.")),
            "again": install_workers_alias(),
        }))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_alias_installs_when_no_workers_module_exists(tmp_path):
    outcome = _alias_outcome(tmp_path, None)
    assert outcome == {
        "installed": True,
        "module": "flexilib.kinds.cloudflare.sdk",
        "leftovers": [],
        "again": True,
    }


def test_alias_leaves_an_importable_workers_alone(tmp_path):
    outcome = _alias_outcome(tmp_path, "from workers.helper import VALUE\nREAL = True\n")
    assert outcome["installed"] is False
    assert outcome["module"] == "workers"
    assert outcome["again"] is False


def test_alias_replaces_a_workers_that_cannot_import_in_cpython(tmp_path):
    # what the real SDK does outside Pyodide: its own submodules load, then `import js` fails
    outcome = _alias_outcome(tmp_path, "from workers.helper import VALUE\nimport js\n")
    assert outcome == {
        "installed": True,
        "module": "flexilib.kinds.cloudflare.sdk",
        "leftovers": [],
        "again": True,
    }
