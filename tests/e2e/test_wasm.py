"""WebAssembly handlers (`wasm:`) through the real server: the examples, the WAGI contract,
and the sandbox: file system, sockets, environment, memory, time, isolation, RSS.

The hostile module (tests/wasm/probe.c) is built with clang for wasm32-wasi during the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from conftest import REPO, RawClient, wait_until

PROBE = REPO / "tests" / "wasm" / "probe.c"
SYSROOT = next(p for p in ("/usr/share/wasi-sysroot", "/usr") if Path(p).is_dir())
WASM_CC = ["clang", "--target=wasm32-wasi", f"--sysroot={SYSROOT}"]


def _can_build_wasm() -> bool:
    if shutil.which("clang") is None:
        return False
    probe = subprocess.run(
        [*WASM_CC, "-x", "c", "-", "-o", "/dev/null"],
        input=b"int main(void){return 0;}",
        capture_output=True,
    )
    return probe.returncode == 0


needs_clang = pytest.mark.skipif(
    not _can_build_wasm(), reason="clang for wasm32-wasi missing (apt: clang lld wasi-libc)"
)
pytest.importorskip("wasmtime")


def build_wasm(source: Path, out: Path) -> Path:
    """Compile a C file into a WASI command with clang."""
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*WASM_CC, "-O2", "-Wall", "-Werror", "-o", str(out), str(source)], check=True)
    return out


def cgi_vars(text: str) -> dict[str, str]:
    """The Rust example's body (`NAME=value` lines after its greeting) as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines()[1:])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def wasm_examples(examples_built) -> Path:
    missing = [n for n in ("zig", "c", "rust") if not (examples_built / f"hello-{n}.wasm").exists()]
    if missing:
        pytest.skip(f"toolchains missing for the {', '.join(missing)} example(s)")
    return examples_built


@pytest.fixture
def sandbox_server(start_server, tmp_path):
    """The probe behind `/p` with a 1 s timeout, 16 MB of memory and one mount, /data."""
    if not _can_build_wasm():
        pytest.skip("clang for wasm32-wasi missing (apt: clang lld wasi-libc)")
    folder = tmp_path / "site"
    mount = folder / "mnt"
    mount.mkdir(parents=True)
    (mount / "hello.txt").write_text("inside")
    (folder / "secret.txt").write_text("outside")
    (mount / "passwd").symlink_to("/etc/passwd")
    (mount / "etc").symlink_to("/etc")
    (mount / "up").symlink_to("..")
    build_wasm(PROBE, folder / "probe.wasm")
    server = start_server(
        "/p = wasm:probe.wasm timeout=1 memory=16 dir=mnt:/data env.GREETING=hi\n",
        folder=folder,
        env={"FLEXILIB_TEST_SECRET": "hunter2"},
    )
    return server


def probe(server, query: str, **kwargs) -> requests.Response:
    return requests.get(f"{server.url}/p?{query}", timeout=10, **kwargs)


def test_examples_in_three_languages(start_server, wasm_examples):
    lib = wasm_examples
    server = start_server(
        f"/zig = wasm:{lib / 'hello-zig.wasm'}\n"
        f"/c = wasm:{lib / 'hello-c.wasm'}\n"
        f"/rust = wasm:{lib / 'hello-rust.wasm'} env.GREETING=hi\n"
    )
    zig = requests.get(server.url + "/zig/a?b=1", timeout=10)
    assert zig.status_code == 200 and zig.headers["Content-Type"] == "text/plain"
    assert zig.text.startswith("hello from Zig (GET /")
    c = requests.post(server.url + "/c?status=404", data=b"the body", timeout=10)
    assert c.status_code == 404 and c.reason == "Not Found"
    assert c.text == "hello from C (POST)\nthe body"
    rust = requests.post(
        server.url + "/rust/x%20y?q=1",
        data=b"12345",
        headers={"X-Foo": "bar", "X_Foo": "forged", "Content-Type": "text/x-test"},
        timeout=10,
    )
    env = cgi_vars(rust.text)
    assert rust.text.startswith("hello from Rust\n")
    assert env["REQUEST_METHOD"] == "POST" and env["QUERY_STRING"] == "q=1"
    assert env["SCRIPT_NAME"] + env["PATH_INFO"] == "/rust/x y"
    assert env["X_RAW_PATH_INFO"].endswith("/x%20y")
    assert env["HTTP_X_FOO"] == "bar"  # the underscore spelling was dropped, not merged
    assert env["CONTENT_TYPE"] == "text/x-test" and env["CONTENT_LENGTH"] == "5"
    assert env["X_FULL_URL"] == f"http://127.0.0.1:{server.port}/rust/x%20y?q=1"
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == str(server.port)
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["GREETING"] == "hi"
    assert env["X_MATCHED_ROUTE"].endswith("/...")


@needs_clang
def test_files_outside_the_mounts_are_invisible(sandbox_server):
    assert probe(sandbox_server, "read=/data/hello.txt").text == "read /data/hello.txt: inside\n"
    for path in (
        "/etc/passwd",
        "/data/../secret.txt",
        "/data/../../../../etc/passwd",
        "/data/passwd",  # symlink to /etc/passwd inside the mount
        "/data/etc/passwd",  # symlink to /etc
        "/data/up/secret.txt",  # symlink to the mount's parent
        "../secret.txt",
        "secret.txt",
    ):
        answer = probe(sandbox_server, f"read={path}")
        assert answer.status_code == 200 and answer.text.startswith("denied "), (path, answer.text)
    assert probe(sandbox_server, "list=/").text.startswith("denied /")
    assert probe(sandbox_server, "write=/data/new.txt").text == "denied /data/new.txt\n"
    assert not (sandbox_server.folder / "mnt" / "new.txt").exists()


@needs_clang
def test_no_sockets_no_server_environment_no_shared_state(sandbox_server):
    assert probe(sandbox_server, "sockets").text == "accepted 0\n"
    env = probe(sandbox_server, "env").text.splitlines()
    assert "GREETING=hi" in env and "REQUEST_METHOD=GET" in env
    names = {line.split("=", 1)[0] for line in env}
    assert "FLEXILIB_TEST_SECRET" not in names and "PATH" not in names and "HOME" not in names
    client = RawClient(sandbox_server.port)
    try:
        for _ in range(5):  # one connection, so the same worker and pool threads each time
            client.send(b"GET /p?calls HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.read_response().body == b"calls 1\n"
    finally:
        client.close()


@needs_clang
def test_limits_and_failures_answer_and_the_worker_keeps_serving(sandbox_server):
    server = sandbox_server
    assert probe(server, "grow=8").text == "grew 8 MB: 1\n"
    assert probe(server, "grow=64").status_code == 507  # malloc saw memory.grow fail at 16 MB
    expected = {
        "loop": (504, r"timed out after 1s"),
        "sleep=3600": (504, r"timed out after 1s"),  # poll_oneoff cut at the deadline
        "flood": (502, r"wrote more than 64 MB to stdout and stderr"),
        "flood=err": (502, r"wrote more than 64 MB to stdout and stderr"),
        "trap": (500, r"trapped: "),
        "exit=3": (500, r"exited with status 3"),
        "garbage": (502, r"bad CGI response: not a header line"),
    }
    for query, (status, logged) in expected.items():
        answer = probe(server, query)
        assert answer.status_code == status, (query, answer.status_code, answer.text)
        server.wait_for_log(
            r"GET /p\?" + query.replace("?", r"\?") + r": wasm:probe\.wasm: " + logged
        )
    assert probe(server, "stderr=hi").text == "logged\n"
    server.wait_for_log(r": probe says hi")
    assert probe(server, "read=/data/hello.txt").status_code == 200


@needs_clang
def test_a_thousand_traps_leave_the_worker_rss_flat(sandbox_server):
    client = RawClient(sandbox_server.port)
    (worker,) = sandbox_server.worker_pids()

    def traps(count: int) -> None:
        for _ in range(count):
            client.send(b"GET /p?trap HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.read_response().status == 500

    try:
        traps(200)  # warm: pool threads, their memfds, the compiled code's pages
        before = rss_kb(worker)
        traps(1000)
        after = rss_kb(worker)
    finally:
        client.close()
    assert after - before < 4096, f"worker RSS grew {after - before} KB over 1,000 traps"


@needs_clang
def test_a_changed_module_is_swapped_and_bad_modules_answer_503(start_server, tmp_path):
    folder = tmp_path / "swap"
    source = folder / "v.c"
    folder.mkdir()
    source.write_text('#include <stdio.h>\nint main(void){printf("Status: 200\\n\\nversion 1");}\n')
    build_wasm(source, folder / "mod.wasm")
    (folder / "junk.wasm").write_bytes(b"\0asm not really")
    server = start_server(
        "/m = wasm:mod.wasm\n/junk = wasm:junk.wasm\n/nowhere = wasm:nowhere.wasm\n", folder=folder
    )
    get = lambda path: requests.get(server.url + path, timeout=10)  # noqa: E731
    assert get("/m").text == "version 1"
    source.write_text('#include <stdio.h>\nint main(void){printf("Status: 200\\n\\nversion 2");}\n')
    build_wasm(source, folder / "mod.wasm.tmp")
    os.replace(folder / "mod.wasm.tmp", folder / "mod.wasm")
    wait_until(lambda: get("/m").text == "version 2", what="the new module version")
    assert get("/junk").status_code == 503
    assert get("/nowhere").status_code == 503
    server.wait_for_log(r"wasm:junk\.wasm: cannot load")
    assert get("/m").text == "version 2"
