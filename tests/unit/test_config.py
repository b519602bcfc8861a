"""proxy.ini parsing (`flexilib.config`) and each kind's option check (`validate_rules`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexilib.config import ConfigError, load_config, parse_config
from flexilib.runtime.handler import validate_rules

REPO = Path(__file__).resolve().parents[2]
ORIGINAL = REPO / "tests" / "data" / "original-proxy.ini"


def parse(text: str, folder: Path) -> list:
    return parse_config(text, folder / "proxy.ini")


def test_the_original_projects_proxy_ini_parses_unmodified():
    rules = load_config(ORIGINAL)
    assert [r.describe() for r in rules] == ["host: iam /", "/c", "/"]
    assert rules[0].header_name == b"host" and rules[0].value_prefix == b"iam"
    assert rules[1].spec.path == str(
        REPO / "tests/data/zig-out/lib/libfaas-proxy-sample-lib-in-c.so"
    )
    assert rules[0].spec == rules[2].spec  # same TARGET: one handler


def test_comments_blank_lines_indentation_and_kinds(tmp_path):
    text = """
    # a comment
      /a = a.so   # trailing comment
    /b = b.py
    /c = python:c.py:run
    /d = lambda:d.py:handler timeout=5 env.STAGE=dev
    /e = worker:e.py env.NAME=x
    /f = http://127.0.0.1:9 http://127.0.0.1:10 connect_timeout=1
    /g = lambda-runtime:rt/bootstrap concurrency=2
    /h = /abs/path/lib.so
    """
    rules = parse(text, tmp_path)
    kinds = [(r.describe(), r.spec.kind) for r in rules]
    assert kinds == [
        ("/a", "native"),
        ("/b", "python"),
        ("/c", "python"),
        ("/d", "lambda"),
        ("/e", "worker"),
        ("/f", "proxy"),
        ("/g", "lambda-runtime"),
        ("/h", "native"),
    ]
    assert rules[0].spec.path == str(tmp_path / "a.so")
    assert rules[2].spec.func == "run" and rules[1].spec.func == "handle_request"
    assert rules[3].spec.options == (("timeout", "5"), ("env.STAGE", "dev"))
    assert rules[5].spec.path == "http://127.0.0.1:9 http://127.0.0.1:10"
    assert rules[7].spec.path == "/abs/path/lib.so"
    assert [r.line for r in rules] == list(range(3, 11))  # lines as written, comments counted


@pytest.mark.parametrize(
    "target, kind, path, func",
    [
        ("lib/a.so", "native", "lib/a.so", ""),
        ("a", "native", "a", ""),  # anything not .py and without a known scheme
        ("h.py", "python", "h.py", "handle_request"),
        ("python:h.py", "python", "h.py", "handle_request"),
        ("python:h.py:serve", "python", "h.py", "serve"),
        ("lambda:fn/app.py:handler", "lambda", "fn/app.py", "handler"),
        ("lambda-runtime:rt/bootstrap", "lambda-runtime", "rt/bootstrap", ""),
        ("worker:w.py", "worker", "w.py", ""),
    ],
)
def test_each_target_kind_and_its_path_resolved_against_the_configs_folder(
    tmp_path, target, kind, path, func
):
    [rule] = parse(f"/ = {target}\n", tmp_path)
    assert (rule.spec.kind, rule.spec.path, rule.spec.func) == (kind, str(tmp_path / path), func)
    assert rule.spec.target == target and rule.spec.base_dir == tmp_path


def test_a_url_list_is_one_proxy_target_with_its_options(tmp_path):
    [rule] = parse("/api = https://a.example:8443/x http://b connect_timeout=2\n", tmp_path)
    assert rule.spec.kind == "proxy"
    assert rule.spec.path == rule.spec.target == "https://a.example:8443/x http://b"
    assert rule.spec.options == (("connect_timeout", "2"),)


def test_a_relative_config_path_resolves_handlers_against_its_own_folder(tmp_path, monkeypatch):
    (tmp_path / "site").mkdir()
    monkeypatch.chdir(tmp_path)
    [rule] = parse_config("/ = handlers/h.py\n", Path("site/proxy.ini"))
    assert rule.spec.path == str(tmp_path / "site" / "handlers" / "h.py")


def test_header_rules(tmp_path):
    rules = parse(
        "X-Tenant: acme /api = a.so\n"
        "User-Agent: Mozilla/5.0 (X11 /ua = b.so\n"  # a value prefix with spaces
        "/api = c.so\n",
        tmp_path,
    )
    tenant, agent, plain = rules
    assert (tenant.header_name, tenant.value_prefix, tenant.path_prefix) == (
        b"x-tenant",  # header names are case-insensitive: kept lower-case
        b"acme",
        b"/api",
    )
    assert (agent.value_prefix, agent.path_prefix) == (b"Mozilla/5.0 (X11", b"/ua")
    assert agent.describe() == "user-agent: Mozilla/5.0 (X11 /ua"
    assert (plain.header_name, plain.value_prefix, plain.path_prefix) == (None, b"", b"/api")
    # the same path under a header rule and a plain one are two rules, not a duplicate
    assert tenant.path_prefix == plain.path_prefix


def test_same_target_is_one_spec_and_options_make_another(tmp_path):
    one, two, three = parse("/a = h.so\n/b = h.so\n/c = h.so dispatch=pool\n", tmp_path)
    assert one.spec == two.spec and hash(one.spec) == hash(two.spec)
    assert three.spec != one.spec and three.spec.option("dispatch") == "pool"
    assert one.spec.option("dispatch", "auto") == "auto"


def test_env_options_by_prefix(tmp_path):
    [rule] = parse("/ = lambda:f.py:h env.A=1 env.B=x=y timeout=2\n", tmp_path)
    assert rule.spec.prefixed("env.") == {"A": "1", "B": "x=y"}


@pytest.mark.parametrize(
    "line, message",
    [
        ("/a = a.so\n/a = b.so", "duplicate KEY '/a' (first on line 2)"),
        ("host: a /x = a.so\nHOST: a /x = b.so", "duplicate KEY"),
        ("/a a.so", "expected 'KEY = TARGET'"),
        ("= a.so", "empty KEY before '='"),
        ("/a =", "no TARGET for '/a'"),
        ("/a = ftp://x", "unknown target kind 'ftp:'"),
        ("/a = a.so speed", "malformed option 'speed'"),
        ("/a = a.so =1", "malformed option '=1'"),
        ("/a = a.so x=1 x=2", "option 'x' given twice"),
        ("Host: iam = a.so", "needs '<Header-Name>: <value-prefix> <path-prefix>'"),
        ("Host: iam api = a.so", "path prefix 'api' of header rule must start with '/'"),
        ("X Tenant: a /x = a.so", "bad header name"),
        (": a /x = a.so", "bad header name"),
        ("/a = lambda:a.py", "must be 'lambda:FILE.py:FUNCTION'"),
        ("/a = lambda:a.py:1st", "bad function name '1st'"),
        ("/a = lambda:.py:h", "no path in"),
        ("/a = lambda-runtime:", "no path in"),
        ("/a = worker:w.js", "must name a .py file"),
        ("/a = python:h.txt", "must name a .py file"),
    ],
)
def test_config_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "proxy.ini"
    with pytest.raises(ConfigError) as caught:
        parse_config("# first line\n" + line, path)
    assert message in str(caught.value)
    last = 2 + line.count("\n")
    assert str(caught.value).startswith(f"{path}:{last}:")
    assert (caught.value.path, caught.value.line) == (str(path), last)


@pytest.mark.parametrize(
    "target, message",
    [
        ("a.so colour=red", "unknown option 'colour' for a native target"),
        ("a.so dispatch=sometimes", "dispatch must be auto, inline or pool"),
        ("h.py env.X=1", "unknown option 'env.X' for a python target"),
        ("lambda:f.py:h timeout=901", "timeout='901' is out of range"),
        ("lambda:f.py:h timeout=soon", "timeout='soon' is not a number"),
        ("lambda:f.py:h format=3.0", "format must be 2.0 or 1.0"),
        ("lambda:f.py:h name=no/slash", "name must be"),
        ("worker:w.py dispatch=pool", "unknown option 'dispatch' for a worker target"),
    ],
)
def test_each_kind_checks_its_options_and_the_error_names_the_line(tmp_path, target, message):
    path = tmp_path / "proxy.ini"
    rules = parse_config(f"/ok = ok.py\n\n/bad = {target}\n", path)
    with pytest.raises(ConfigError) as caught:
        validate_rules(rules, path)
    assert str(caught.value).startswith(f"{path}:3: ")
    assert message in str(caught.value)


def test_good_options_pass_validation_unchanged(tmp_path):
    path = tmp_path / "proxy.ini"
    rules = parse_config(
        "/a = a.so dispatch=inline\n"
        "/b = lambda:f.py:h timeout=5 memory=256 format=1.0 env.STAGE=dev\n"
        "/c = http://127.0.0.1:9\n",
        path,
    )
    assert validate_rules(rules, path) is rules


def test_an_unreadable_or_binary_config_is_a_config_error_without_a_line(tmp_path):
    missing = tmp_path / "nope.ini"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert str(caught.value) == f"{missing}: cannot read config: No such file or directory"
    assert caught.value.line == 0
    binary = tmp_path / "binary.ini"
    binary.write_bytes(b"/ = \xff\xfe.so\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)
