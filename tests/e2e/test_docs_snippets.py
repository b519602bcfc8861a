"""Every runnable snippet of the README and the docs, run against a real server.

A snippet is runnable when an HTML comment right before its fenced block says
what to do with it (the comment is invisible on the rendered page):

- `<!-- test: file PATH -->`   write the block to PATH in the page's folder
- `<!-- test: run -->`         run the block with bash there (a build, a chmod)
- `<!-- test: background port=N -->`  start the block's command and wait for
  port N (every `N` on the page is then read as a free port of the test's)
- `free=N` on any marker: `N` on the page is a port nothing listens on (a
  free port of the test's)
- `<!-- test: serve -->`       the block is a `flexilib` command line: the
  server is (re)started with it, its `--config` file and flags, on a free port
- `<!-- test: console [poll] -->`  `$ command` lines, each followed by the
  output the page promises; `...` stands for any text. `curl` reaches the
  server the page started as `localhost:8069`. `poll`: retry until the output
  matches (after an edit that a reload must pick up), bounded.
- `<!-- test: requires TOOL -->`  (no block) skip the page without TOOL

Each page runs in order, top to bottom, in its own temporary folder holding
a copy of `include/` (the pages build as in a checkout).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, free_port, wait_until

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
BLOCK = re.compile(
    r"^<!-- test: (?P<what>\w+)(?P<args>[^>]*?) -->\n```[^\n]*\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
REQUIRES = re.compile(r"^<!-- test: requires (\S+) -->$", re.MULTILINE)
KINDS = {"file", "run", "background", "serve", "console"}
DOC_PORT = "8069"


@dataclass
class Step:
    what: str
    args: list[str]
    body: str
    line: int

    def where(self, page: Path) -> str:
        return f"{page.relative_to(REPO)}:{self.line}"


def steps_of(page: Path) -> list[Step]:
    text = page.read_text(encoding="utf-8")
    steps = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        step = Step(m["what"], m["args"].split(), m["body"].rstrip("\n"), line)
        assert step.what in KINDS, f"{step.where(page)}: unknown snippet marker {step.what!r}"
        steps.append(step)
    markers = len(re.findall(r"^<!-- test: (?!requires )", text, re.MULTILINE))
    assert markers == len(steps), f"{page}: a test marker is not right before a fenced block"
    return steps


RUNNABLE = [page for page in PAGES if steps_of(page)]


def test_pages_have_runnable_snippets():
    """The pages that promise output carry markers (guards against a marker typo emptying it)."""
    names = {str(page.relative_to(REPO)) for page in RUNNABLE}
    for page in (
        "README.md",
        "docs/tutorials/first-native-handler.md",
        "docs/tutorials/first-lambda.md",
        "docs/tutorials/first-worker.md",
        "docs/how-to/python-handlers.md",
        "docs/how-to/reverse-proxy.md",
        "docs/how-to/hot-reload.md",
        "docs/reference/proxy-ini.md",
    ):
        assert page in names


def expected_regex(expected: str) -> re.Pattern:
    parts = [re.escape(part) for part in expected.split("...")]
    return re.compile(".*?".join(parts), re.DOTALL)


def normalised(output: str) -> str:
    return "\n".join(line.rstrip() for line in output.strip("\n").splitlines())


def console_pairs(body: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:], []))
        else:
            assert pairs, f"output before the first command: {line!r}"
            pairs[-1][1].append(line)
    return [(command, "\n".join(out)) for command, out in pairs]


class Page:
    """One page's run: its folder, its server, its background services."""

    def __init__(self, page: Path, folder: Path, start_server) -> None:
        self.page = page
        self.folder = folder
        self.start_server = start_server
        self.server = None
        self.services: list[subprocess.Popen] = []
        self.ports: dict[str, str] = {}
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        shutil.copytree(REPO / "include", folder / "include")

    def text(self, body: str) -> str:
        for doc_port, port in self.ports.items():
            body = re.sub(rf"\b{doc_port}\b", port, body)
        return body

    def run(self, steps: list[Step]) -> None:
        for step in steps:  # every port the page declares, known before any file is written
            for arg in step.args:
                if arg.startswith(("port=", "free=")):
                    self.ports[arg.split("=", 1)[1]] = str(free_port())
        for step in steps:
            try:
                getattr(self, f"do_{step.what}")(step)
            except AssertionError as exc:
                raise AssertionError(f"{step.where(self.page)}: {exc}") from None

    def do_file(self, step: Step) -> None:
        path = self.folder / step.args[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.text(step.body) + "\n")

    def do_run(self, step: Step) -> None:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", self.text(step.body)],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout}{done.stderr}"

    def do_background(self, step: Step) -> None:
        (port,) = [self.ports[a.split("=", 1)[1]] for a in step.args if a.startswith("port=")]
        service = subprocess.Popen(
            ["bash", "-c", f"exec {self.text(step.body)}"],
            cwd=self.folder,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.services.append(service)

        def listening() -> bool:
            assert service.poll() is None, f"{step.body!r} exited {service.returncode}"
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", int(port))) == 0

        wait_until(listening, 15, what=f"{step.body!r} on port {port}")

    def do_serve(self, step: Step) -> None:
        words = shlex.split(self.text(step.body).removeprefix("$ "), comments=True)
        env = {}
        while "=" in words[0]:
            name, value = words.pop(0).split("=", 1)
            env[name] = value
        assert words.pop(0) == "flexilib", "a serve block runs flexilib"
        if words and words[0] == "serve":
            words.pop(0)
        config = "proxy.ini"
        if "--config" in words:
            at = words.index("--config")
            config = words[at + 1]
            del words[at : at + 2]
        if self.server is not None:
            self.server.stop()
        text = (self.folder / config).read_text()
        self.server = self.start_server(text, *words, env=env, folder=self.folder)

    def do_console(self, step: Step) -> None:
        for command, expected in console_pairs(self.text(step.body)):
            if command.startswith("curl "):
                assert self.server is not None, "curl before a serve block"
                reach = f"localhost:{DOC_PORT}:127.0.0.1:{self.server.port}"
                command = f"curl -sS --connect-to {reach} {command[5:]}"
            self.check(command, expected, poll="poll" in step.args)

    def check(self, command: str, expected: str, poll: bool) -> None:
        """Run `command`; its output must match `expected` (at once, or within 15 s if `poll`)."""
        pattern = expected_regex(normalised(expected))
        got = ""

        def matches() -> bool:
            nonlocal got
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=self.folder,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            got = normalised(done.stdout + done.stderr)
            return pattern.fullmatch(got) is not None

        try:
            wait_until(matches, 15 if poll else 0, what=repr(command))
        except AssertionError:
            raise AssertionError(f"$ {command}\nexpected:\n{expected}\ngot:\n{got}") from None

    def close(self) -> None:
        for service in self.services:
            if service.poll() is None:
                os.killpg(service.pid, signal.SIGTERM)
                service.wait(10)


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(REPO)) for p in RUNNABLE])
def test_page_snippets_run_as_printed(page: Path, tmp_path, start_server):
    text = page.read_text(encoding="utf-8")
    for tool in REQUIRES.findall(text):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    runner = Page(page, tmp_path / "page", start_server)
    try:
        runner.run(steps_of(page))
    finally:
        runner.close()
