"""The bundled default (proxy.ini and examples), as the README's quick start serves it."""

from __future__ import annotations

import requests
from conftest import REPO


def test_bundled_default_serves_every_kind(start_server, examples_built, tmp_path):
    folder = tmp_path / "default"
    folder.mkdir()
    for name in ("lib", "examples"):  # the config's relative paths, seen from a copy of it
        (folder / name).symlink_to(REPO / name)
    server = start_server((REPO / "proxy.ini").read_text(), folder=folder)
    get = lambda path, **h: requests.get(server.url + path, headers=h, timeout=10)  # noqa: E731
    assert get("/", Host="iam").text == "iam response"
    plain = get("/")
    assert plain.text.strip().isdigit() and plain.headers["X-custom-foo"] == "bar"
    assert get("/", **{"x-slow": "10"}).text.startswith("i am slow")
    assert get("/c").text == "hello from C"
    zig = get("/zig", **{"X-Name": "Ada"})  # examples/zig/hello.zig, built by `make examples`
    assert zig.text == "hello Ada, from Zig" and zig.headers["X-Zig-Version"].startswith("0.13.")
    assert get("/py").text.startswith("hello world from Python")
    lam = get("/lambda?name=you")
    assert lam.json()["message"] == "hello you" and lam.cookies["visited"] == "1"
    assert get("/runtime").status_code == 200
    assert get("/worker").json()["hello"] == "flexilib"
    assert get("/wasm/x?y").text == "hello from Zig (GET /x)\n"
