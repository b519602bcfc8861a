"""The wasm: kind in process: WAGI variables, CGI response parsing, config, and the sandbox
on small WebAssembly text modules (the e2e tests run real compiled modules in the server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flexilib.config import parse_config
from flexilib.kinds.wasm.handler import WasmHandler
from flexilib.kinds.wasm.wagi import CgiError, cgi_environ, parse_cgi
from flexilib.request import Request
from flexilib.runtime.handler import validate_rules


def request(target: bytes = b"/", headers=(), body: bytes = b"", method: bytes = b"GET"):
    return Request(method, target, list(headers), body, ("10.0.0.7", 5555), "1.1")


def environ(req: Request, route: bytes = b"") -> dict[str, str]:
    pairs = cgi_environ(req, route)
    assert len({name for name, _ in pairs}) == len(pairs), "a variable set twice"
    return dict(pairs)


def test_request_line_and_route_become_cgi_variables():
    req = request(b"/app/a%20b/c?x=1&y=%41", [(b"Host", b"example.com:8443")], b"hello", b"PUT")
    env = environ(req, b"/app/")
    assert env["REQUEST_METHOD"] == "PUT"
    assert env["SCRIPT_NAME"] == "/app" and env["PATH_INFO"] == "/a b/c"
    assert env["X_RAW_PATH_INFO"] == "/a%20b/c" and env["QUERY_STRING"] == "x=1&y=%41"
    assert env["X_MATCHED_ROUTE"] == "/app/..."
    assert env["X_FULL_URL"] == "http://example.com:8443/app/a%20b/c?x=1&y=%41"
    assert env["SERVER_NAME"] == "example.com" and env["SERVER_PORT"] == "8443"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1" and env["REMOTE_ADDR"] == "10.0.0.7"
    assert env["CONTENT_LENGTH"] == "5" and env["CONTENT_TYPE"] == ""


def test_no_route_gives_the_whole_path_and_default_ports():
    env = environ(request(b"/x", [(b"Host", b"[::1]")]))
    assert env["SCRIPT_NAME"] == "" and env["PATH_INFO"] == "/x"
    assert env["SERVER_NAME"] == "[::1]" and env["SERVER_PORT"] == "80"
    assert env["CONTENT_LENGTH"] == ""  # no body: unset, as CGI says
    assert environ(request(b"/x", [(b"Host", b"[::1]:81")]))["SERVER_PORT"] == "81"
    # a header rule's prefix that is not this path's: no SCRIPT_NAME to strip
    assert environ(request(b"/other"), b"/app")["PATH_INFO"] == "/other"


def test_headers_become_http_variables_except_credentials_and_underscores():
    env = environ(
        request(
            b"/",
            [
                (b"X-Forwarded-For", b"1.2.3.4"),
                (b"X_Forwarded_For", b"forged"),
                (b"Accept", b"text/html"),
                (b"accept", b"text/plain"),
                (b"Authorization", b"Bearer secret"),
                (b"Connection", b"keep-alive"),
                (b"Content-Type", b"application/json"),
                (b"X-Bytes", "caf\xe9".encode("latin-1")),
            ],
        )
    )
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"
    assert env["HTTP_ACCEPT"] == "text/html, text/plain"
    assert env["CONTENT_TYPE"] == "application/json" and "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_AUTHORIZATION" not in env and "HTTP_CONNECTION" not in env
    assert env["HTTP_X_BYTES"] == "caf\xe9"


@pytest.mark.parametrize(
    ("output", "status", "reason", "headers", "body"),
    [
        (b"Content-Type: text/html\n\n<p>hi", 200, None, [("Content-Type", "text/html")], b"<p>hi"),
        (
            b"Status: 404 Not Found\r\nX-A: 1\r\n\r\nnope\n",
            404,
            "Not Found",
            [("X-A", "1")],
            b"nope\n",
        ),
        (b"Status: 201\n\n", 201, None, [], b""),
        (b"Location: /elsewhere\n\n", 302, None, [("Location", "/elsewhere")], b""),
        (b"Status: 301 Moved\nLocation: /x\n", 301, "Moved", [("Location", "/x")], b""),
        (
            b"Content-Length: 99\nConnection: close\nX-B:  v \n\nbody",
            200,
            None,
            [("X-B", "v")],
            b"body",
        ),
        (b"\nonly a body\n\n", 200, None, [], b"only a body\n\n"),
    ],
)
def test_cgi_responses_parse(output, status, reason, headers, body):
    response = parse_cgi(output)
    assert (response.status, response.reason, response.headers, response.body) == (
        status,
        reason,
        headers,
        body,
    )


@pytest.mark.parametrize(
    "output",
    [
        b"",
        b"hello world\n\n",
        b"Bad Name: x\n\n",
        b"X-Split: a\rb\n\n",
        b"X-Nul: a\0b\n\n",
        b"Status: 99\n\n",
        b"Status: 700 Nope\n\n",
        b"Status: abc\n\n",
    ],
)
def test_malformed_cgi_responses_are_errors(output):
    with pytest.raises(CgiError):
        parse_cgi(output)


def test_config_recognises_wasm_targets_and_checks_options(tmp_path: Path):
    rules = parse_config(
        "/a = wasm:mod.wasm timeout=2 memory=64 dir=data:/data dir=/srv:/srv env.X=1\n"
        "/b = wasm:text.wat\n",
        tmp_path / "proxy.ini",
    )
    validate_rules(rules, "proxy.ini")
    assert [r.spec.kind for r in rules] == ["wasm", "wasm"]
    assert rules[0].spec.path == str(tmp_path / "mod.wasm")
    handler = WasmHandler(rules[0].spec)
    assert handler.dispatch == "pool" and handler.limit == 2.0 and handler.memory == 64
    assert handler.mounts == [(str(tmp_path / "data"), "/data"), ("/srv", "/srv")]
    assert handler.env == {"X": "1"}
    for bad, message in (
        ("/a = wasm:mod.so", "must name a .wasm or .wat file"),
        ("/a = wasm:", "no path"),
        ("/a = wasm:m.wasm timeout=0", "out of range"),
        ("/a = wasm:m.wasm memory=9999", "out of range"),
        ("/a = wasm:m.wasm dir=/nowhere", "HOSTDIR:GUESTDIR"),
        ("/a = wasm:m.wasm argv=1", "unknown option"),
        ("/a = wasm:m.wasm timeout=1 timeout=2", "given twice"),
    ):
        with pytest.raises(Exception, match=message):
            validate_rules(parse_config(bad, tmp_path / "proxy.ini"), "proxy.ini")


# -- the sandbox on WebAssembly text -------------------------------------------------
wasmtime = pytest.importorskip("wasmtime")
from flexilib.kinds.wasm.sandbox import Sandbox  # noqa: E402 - only with wasmtime

_PRINT = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 16) "Status: 418 Teapot\\n\\ncall ")
  (func (export "_start")
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 41) (i32.add (i32.const 48) (global.get $calls)))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 26))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def sandbox(tmp_path: Path, text: str, timeout: float = 5.0, memory: int = 1) -> Sandbox:
    path = tmp_path / "m.wat"
    path.write_text(text)
    return Sandbox(str(path), timeout=timeout, memory_mb=memory, env={}, dirs=[])


def test_each_run_gets_a_fresh_instance(tmp_path):
    box = sandbox(tmp_path, _PRINT)
    for _ in range(3):
        outcome = box.run([], b"")
        assert outcome.error is None and outcome.stdout == b"Status: 418 Teapot\n\ncall 1"
    assert parse_cgi(outcome.stdout).status == 418


def test_an_endless_loop_is_interrupted_by_the_engine(tmp_path):
    box = sandbox(
        tmp_path,
        '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))',
        0.05,
    )
    outcome = box.run([], b"")
    assert (outcome.status, outcome.error) == (504, "timed out after 0.05s")


def test_memory_beyond_the_cap_cannot_be_had(tmp_path):
    grow = """(module (memory (export "memory") 1)
      (func (export "_start") (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable))))"""
    assert sandbox(tmp_path, grow, memory=2).run([], b"").error is None  # 17 pages fit in 2 MB
    failed = sandbox(tmp_path, grow, memory=1).run([], b"")
    assert failed.status == 500 and failed.error.startswith("trapped: ")
    too_big = '(module (memory (export "memory") 32) (func (export "_start")))'
    assert "exceeds memory limits" in sandbox(tmp_path, too_big, memory=1).run([], b"").error


def test_a_module_that_is_not_a_command_does_not_load(tmp_path):
    with pytest.raises(wasmtime.WasmtimeError, match="no `_start`"):
        sandbox(tmp_path, '(module (memory (export "memory") 1))')


def test_interpreter_exit_is_clean_after_runs_and_during_one(tmp_path):
    """The `tokio-rt-worker` panic at exit: not after 2,000 runs, nor with an instance running."""
    looping = tmp_path / "loop.wat"
    looping.write_text(
        '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'
    )
    hello = Path(__file__).resolve().parents[2] / "bench" / "handlers" / "hello_wagi.wat"
    script = (
        "import threading\n"
        "from flexilib.kinds.wasm.sandbox import Sandbox\n"
        f"box = Sandbox({str(hello)!r}, timeout=5, memory_mb=1, env={{}}, dirs=[])\n"
        "for _ in range(2000):\n"
        "    assert box.run([('A', 'b')], b'body').error is None\n"
        f"spin = Sandbox({str(looping)!r}, timeout=60, memory_mb=1, env={{}}, dirs=[])\n"
        "started = threading.Event()\n"
        "threading.Thread(target=lambda: (started.set(), spin.run([], b'')), daemon=True).start()\n"
        "started.wait()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    assert b"panicked" not in result.stderr


def test_no_output_carries_over_to_the_next_run_on_a_thread(tmp_path):
    def writer(blocks: int) -> Sandbox:  # writes `blocks` x 60 KiB of zero bytes to stdout
        return sandbox(
            tmp_path,
            f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $n i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 61440))
    (loop $again
      (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $n) (i32.const {blocks}))))))""",
        )

    printer = sandbox(tmp_path, _PRINT)
    for blocks in (1, 40):  # 60 KiB is kept in the memfd until the next open; 2.4 MB is not
        assert len(writer(blocks).run([], b"").stdout) == blocks * 61440
        assert printer.run([], b"").stdout == b"Status: 418 Teapot\n\ncall 1"
