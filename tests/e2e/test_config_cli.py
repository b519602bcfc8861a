"""Routing order through a real server, and the `flexilib` command line (parsing: tests/unit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import REPO, free_port

ORIGINAL = REPO / "tests" / "data" / "original-proxy.ini"


def flexilib(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 30):
    return subprocess.run(
        [sys.executable, "-m", "flexilib", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def test_first_match_wins_and_header_rules(start_server, examples_built, tmp_path):
    folder = tmp_path / "site"
    (folder / "handlers").mkdir(parents=True)
    for name in ("one", "two", "three"):
        (folder / "handlers" / f"{name}.py").write_text(
            f"def handle_request(request):\n    return {name!r}\n"
        )
    config = (
        "X-Tenant: acme /api = handlers/one.py\n"  # header rule, relative path
        "/api/v2 = handlers/two.py\n"  # shadowed by /api below? no: listed first, wins
        "/api = handlers/three.py\n"
    )
    server = start_server(config, folder=folder)
    get = lambda path, **h: requests.get(server.url + path, headers=h).text  # noqa: E731
    assert get("/api/v2/x") == "two"
    assert get("/api/x") == "three"
    assert (
        get("/api/x", **{"x-tenant": "acme-corp"}) == "one"
    )  # name case-insensitive, value prefix
    assert get("/api/x", **{"X-Tenant": "other"}) == "three"
    assert get("/apiary") == "three"  # a plain prefix, as the original matches
    assert requests.get(server.url + "/other").status_code == 404


def test_same_target_on_several_lines_loads_once(start_server, examples_built):
    lib = examples_built / "libsample.so"
    server = start_server(f"Host: iam / = {lib}\n/c = {lib}\n/ = {lib}\n")
    assert requests.get(server.url + "/", headers={"Host": "iam"}).text == "iam response"
    assert requests.get(server.url + "/c").text.strip().isdigit()  # " <header count>"
    assert requests.get(server.url + "/").text.strip().isdigit()
    assert server.errors().count("loaded ") == 1


def test_routes_command_prints_the_table():
    result = flexilib("routes", str(ORIGINAL))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert "3 routes" in lines[0]
    assert "host: iam /" in lines[1] and "native" in lines[1]
    assert lines[2].split()[1] == "/c"


def test_check_reports_each_problem_with_line(tmp_path, examples_built):
    (tmp_path / "ok.py").write_text("def handle_request(r):\n    return 'ok'\n")
    (tmp_path / "broken.py").write_text("def handle_request(r)\n")
    config = tmp_path / "proxy.ini"
    config.write_text(
        f"/ok = ok.py\n/lib = {examples_built / 'libsample.so'}\n/broken = broken.py\n/none = none.so\n"
    )
    result = flexilib("check", str(config))
    assert result.returncode == 1
    assert f"{config}:1: /ok: ok (python)" in result.stdout
    assert f"{config}:2: /lib: ok (native)" in result.stdout
    assert f"{config}:3: /broken: cannot load" in result.stdout and "SyntaxError" in result.stdout
    assert f"{config}:4: /none: cannot load" in result.stdout and "no such file" in result.stdout
    assert "4 routes, 2 problem(s)" in result.stdout
    config.write_text("/ok = ok.py\n")
    assert flexilib("check", str(config)).returncode == 0


def test_bad_config_exits_2_with_file_and_line(tmp_path):
    config = tmp_path / "proxy.ini"
    config.write_text("/ = a.so\n/ = b.so\n")
    for args in (
        ["serve", "--config", str(config)],
        ["check", str(config)],
        ["routes", str(config)],
    ):
        result = flexilib(*args)
        assert result.returncode == 2
        assert f"{config}:2: duplicate KEY" in result.stderr
        assert "Traceback" not in result.stderr
    missing = flexilib("--config", str(tmp_path / "nope.ini"))
    assert missing.returncode == 2 and "cannot read config" in missing.stderr


@pytest.mark.parametrize(
    "env, args, message",
    [
        ({"PORT": "eighty"}, [], "PORT='eighty' is not a valid int"),
        ({"PORT": "70000"}, [], "PORT='70000' is out of range"),
        ({}, ["--threads", "0"], "--threads='0' is out of range"),
        ({"SERVER_THREAD_COUNT": "x"}, [], "SERVER_THREAD_COUNT='x'"),
        ({"SERVER_ADDRESS": "not-an-ip"}, [], "is not an IPv4 or IPv6 address"),
        ({"SERVER_WORKERS": "-1"}, [], "SERVER_WORKERS='-1' is out of range"),
        ({"RESPONSE_PREALLOCATION_KB": "lots"}, [], "RESPONSE_PREALLOCATION_KB='lots'"),
        (
            {"SERVER_THREAD_COUNT": "8", "SERVER_MAX_THREADS": "4"},
            [],
            "is below SERVER_THREAD_COUNT",
        ),
        ({}, ["--header-timeout", "soon"], "--header-timeout='soon'"),
    ],
)
def test_bad_settings_exit_2_naming_the_variable(tmp_path, env, args, message):
    (tmp_path / "proxy.ini").write_text("/ = a.so\n")
    result = flexilib(*args, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_flags_win_over_variables(start_server, examples_built, tmp_path):
    (tmp_path / "proxy.ini").write_text(f"/ = {examples_built / 'libsample.so'}\n")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "flexilib", "--port", str(port), "--address", "127.0.0.1"],
        cwd=tmp_path,
        env={**os.environ, "PORT": "1", "SERVER_ADDRESS": "0.0.0.0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stderr.readline()
        assert f"listening on 127.0.0.1:{port}" in line
    finally:
        process.terminate()
        assert process.wait(20) == 0


def test_help_for_each_command():
    for args in (["--help"], ["serve", "--help"], ["check", "--help"], ["routes", "--help"]):
        result = flexilib(*args)
        assert result.returncode == 0 and "usage: flexilib" in result.stdout
    assert "SERVER_THREAD_COUNT" in flexilib("serve", "--help").stdout
