"""The master's parts: its control-pipe framing, the shared scoreboard, config validation."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from flexilib.config import parse_config
from flexilib.master import read_and_validate
from flexilib.runtime.handler import handler_class
from flexilib.server.control import Decoder, encode
from flexilib.server.scoreboard import Scoreboard


def test_messages_survive_being_split_at_every_byte(tmp_path):
    rules = parse_config("/a = a.so\nHost: x /b = b.py dispatch=pool\n", tmp_path / "proxy.ini")
    messages = [("rules", rules), ("stop",), {"n": 1, "blob": b"\x00" * 70_000}]
    data = b"".join(encode(m) for m in messages)
    decoder, out = Decoder(), []
    for n in range(len(data)):
        out += decoder.feed(data[n : n + 1])
    assert out == messages
    assert decoder.feed(b"") == []


def test_several_messages_in_one_read():
    decoder = Decoder()
    data = encode("one") + encode("two") + encode("three")[:3]
    assert decoder.feed(data) == ["one", "two"]
    assert decoder.feed(encode("three")[3:]) == ["three"]


def test_a_beat_is_seen_and_each_worker_has_its_own_record():
    board = Scoreboard(3)
    board.beat(1)
    assert board.silent_for(1) < board.silent_for(0)  # 0 never beat
    before = time.monotonic()
    board.beat(0)
    assert board.silent_for(0) <= time.monotonic() - before  # stamped after `before`
    assert board.silent_for(1) >= board.silent_for(0)
    later = board.silent_for(1)
    assert board.silent_for(1) >= later  # silence only grows until the next beat


def test_a_forked_workers_beat_reaches_the_master():
    board = Scoreboard(3)
    never = board.silent_for(2)
    forked = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the "worker"
        try:
            board.beat(1)
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    # the child's stamp is in the parent's view of the memory, and is after the fork
    assert board.silent_for(1) <= time.monotonic() - forked
    assert board.silent_for(2) >= never  # untouched


def test_a_good_config_comes_back_as_validated_rules(tmp_path):
    config = tmp_path / "proxy.ini"
    config.write_text("/a = a.so dispatch=inline\n/b = lambda:f.py:h timeout=5\n")
    rules, error = read_and_validate(config)
    assert error is None
    assert rules == parse_config(config.read_text(), config)


@pytest.mark.parametrize(
    "text, message",
    [
        ("/a = a.so\n/a = b.so\n", ":2: duplicate KEY '/a' (first on line 1)"),
        ("/a = a.so\n/b = a.so colour=red\n", ":2: unknown option 'colour' for a native target"),
    ],
)
def test_a_bad_config_is_its_file_and_line_message_and_no_rules(tmp_path, text, message):
    config = tmp_path / "proxy.ini"
    config.write_text(text)
    assert read_and_validate(config) == ([], f"{config}{message}")


def test_an_unreadable_config_is_a_message(tmp_path):
    missing = tmp_path / "nope.ini"
    assert read_and_validate(missing) == (
        [],
        f"{missing}: cannot read config: No such file or directory",
    )
    folder = tmp_path / "folder.ini"
    folder.mkdir()
    rules, error = read_and_validate(folder)
    assert rules == [] and error.startswith(f"{folder}: cannot read config: ")
    binary = tmp_path / "binary.ini"
    binary.write_bytes(b"/ = \xff.so\n")
    rules, error = read_and_validate(binary)
    assert rules == [] and error.startswith(f"{binary}: cannot read config: ")


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_the_master_imports_the_workers_modules_but_no_other_kind_before_forking():
    modules = _modules_after(
        "from flexilib.master import _share_with_workers\n_share_with_workers()"
    )
    assert {"uvloop", "flexilib.server.worker", "flexilib.kinds.native.handler"} <= modules
    other_kinds = {m for m in modules if m.startswith("flexilib.kinds.")} - {
        "flexilib.kinds.native",
        "flexilib.kinds.native._native",
        "flexilib.kinds.native.elfcheck",
        "flexilib.kinds.native.handler",
    }
    assert other_kinds == set()
    assert {"watchfiles", "yaml", "wasmtime", "email", "tempfile", "shutil"} & modules == set()


def test_validating_a_config_imports_only_the_kinds_it_names(tmp_path):
    config = tmp_path / "proxy.ini"
    config.write_text(f"/a = {tmp_path / 'a.so'}\n")
    validate = (
        "from flexilib.config import load_config\n"
        "from flexilib.runtime.handler import validate_rules\n"
        f"validate_rules(load_config({str(config)!r}), 'proxy.ini')"
    )
    native = _modules_after(validate)
    assert "flexilib.kinds.native.handler" in native
    assert "flexilib.kinds.proxy.handler" not in native
    config.write_text(f"/a = {tmp_path / 'a.so'}\n/b = http://127.0.0.1:9\n")
    assert "flexilib.kinds.proxy.handler" in _modules_after(validate)


def test_an_unknown_kind_is_a_clear_error_not_an_import_failure():
    with pytest.raises(ValueError, match="unknown target kind 'nope'"):
        handler_class("nope")
