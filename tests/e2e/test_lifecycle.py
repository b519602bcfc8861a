"""Zero-downtime lifecycle: hot reload under load, SIGHUP, supervised workers, graceful stop.

Each test runs a real flexilib process on a loopback port and changes it the way a
developer or an operator does: rebuilding a library with gcc, editing a Python file,
sending signals, crashing a worker. Client threads on keep-alive connections keep
requesting throughout, and every answer they get is checked.

"In flight" is observed, never guessed: the native test library below creates the
file named by an `x-mark` header before it sleeps for `x-slow` milliseconds.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import INCLUDE, NATIVE_SOURCES, RawClient, build_library, wait_until

REBUILDS = 50
WAYS = ("in place", "rename", "recreate", "gcc -o")

INFLIGHT_SOURCE = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "flexilib.h"

static char body[] = VERSION;
static flexilib_response response = {.ptr = body, .len = sizeof body - 1};

static void header(const flexilib_request *request, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < request->headers_len; i++) {
        const flexilib_header *h = &request->headers[i];
        if (h->name_len == strlen(name) && strncasecmp(h->name_ptr, name, h->name_len) == 0
            && h->value_len < size) {
            memcpy(out, h->value_ptr, h->value_len);
            out[h->value_len] = '\0';
        }
    }
}

flexilib_response *handle_request(flexilib_request *request)
{
    char mark[1024], slow[20];
    header(request, "x-mark", mark, sizeof mark);
    header(request, "x-slow", slow, sizeof slow);
    if (mark[0]) {
        int fd = open(mark, O_CREAT | O_WRONLY, 0644);
        if (fd >= 0)
            close(fd);
    }
    unsigned long ms = strtoul(slow, NULL, 10);
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
    return &response;
}
"""

PID_HANDLER = "import os\n\n\ndef handle_request(request):\n    return str(os.getpid())\n"
CRASH_HANDLER = """import os


def handle_request(request):
    if "x-crash" in request.headers:
        os.abort()
    return "alive"
"""


# -- helpers ---------------------------------------------------------------------------


def gcc(out: Path, source: Path, *defines: str) -> None:
    """Link straight onto `out`, the way a build writes a library in place."""
    subprocess.run(
        ["gcc", "-O2", "-fPIC", "-shared", "-Wall", "-Werror", f"-I{INCLUDE}"]
        + [f"-D{d}" for d in defines]
        + ["-o", str(out), str(source)],
        check=True,
    )


def inflight_library(folder: Path, out: Path, version: str) -> Path:
    source = folder / "inflight.c"
    if not source.exists():
        source.write_text(INFLIGHT_SOURCE)
    return build_library(source, out, f'VERSION="{version}"')


def install(way: str, built: Path, live: Path) -> None:
    """Put `built` at `live` in one of the ways a build or a developer does."""
    if way == "in place":  # open the existing file with O_TRUNC and write over it
        subprocess.run(["cp", str(built), str(live)], check=True)
    elif way == "rename":
        subprocess.run(["cp", str(built), f"{live}.tmp"], check=True)
        subprocess.run(["mv", f"{live}.tmp", str(live)], check=True)
    elif way == "recreate":
        live.unlink()
        subprocess.run(["cp", str(built), str(live)], check=True)
    else:
        raise ValueError(way)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, timeout=10)


class Load:
    """Client threads, each on one keep-alive session, requesting a URL until stopped.

    Bounded (`limit` requests per thread) so a test can never spin forever. Every
    answer is recorded: failures, the bodies seen, when each body was first seen,
    and per thread the order in which bodies changed.
    """

    def __init__(self, url: str, threads: int = 4, limit: int = 500_000) -> None:
        self.url = url
        self.limit = limit
        self.bodies: collections.Counter[str] = collections.Counter()
        self.first_seen: dict[str, float] = {}
        self.failures: list[str] = []
        self.changes: list[list[str]] = [[] for _ in range(threads)]
        self.exhausted = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        wait_until(lambda: self.total >= len(self._threads), what="the load to start")
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    @property
    def total(self) -> int:
        return sum(self.bodies.values()) + len(self.failures)

    def _run(self, index: int) -> None:
        changes = self.changes[index]
        with requests.Session() as session:
            for _ in range(self.limit):
                if self._stop.is_set():
                    return
                try:
                    response = session.get(self.url, timeout=10)
                except requests.RequestException as exc:
                    with self._lock:
                        self.failures.append(repr(exc))
                    continue
                now = time.monotonic()
                body = response.text
                with self._lock:
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code} {body!r}")
                        continue
                    self.bodies[body] += 1
                    self.first_seen.setdefault(body, now)
                if not changes or changes[-1] != body:
                    changes.append(body)
        self.exhausted = True

    def check(self, versions: list[str]) -> None:
        """No failure; every body is one version; no thread ever went back to an older one."""
        assert not self.failures, self.failures[:5]
        assert not self.exhausted, "the load ran out before the test ended"
        assert set(self.bodies) <= set(versions), set(self.bodies) - set(versions)
        order = {version: i for i, version in enumerate(versions)}
        for changes in self.changes:
            seen = [order[body] for body in changes]
            assert seen == sorted(seen), f"a client went back to an older version: {changes}"


def wait_for_version(url: str, version: str, load: Load | None, written: float) -> float:
    """Poll until `version` answers; seconds from `written` to its first answer anywhere."""
    with requests.Session() as session:
        seen = wait_until(
            lambda: session.get(url, timeout=10).text == version and time.monotonic(),
            timeout=20,
            interval=0.005,
            what=f"{version} to answer",
        )
    if load is not None:
        seen = min(seen, load.first_seen.get(version, seen))
    return seen - written


def report(title: str, latencies: list[float], load: Load) -> None:
    ms = sorted(1000 * s for s in latencies)
    print(
        f"\n{title}: {len(ms)} swaps, {load.total} requests served under load, 0 failed;"
        f" swap latency (file written -> new version answering) median {statistics.median(ms):.0f}"
        f" ms, min {ms[0]:.0f}, p90 {ms[int(0.9 * (len(ms) - 1))]:.0f}, max {ms[-1]:.0f} ms"
    )


# -- hot reload under load ------------------------------------------------------------


def test_native_library_rebuilt_50_times_under_load(start_server, tmp_path):
    live_dir, build_dir = tmp_path / "live", tmp_path / "build"
    live_dir.mkdir()
    live = live_dir / "libversion.so"
    build_library("version.c", live, 'VERSION="v00"')
    server = start_server(f"/ = {live}\n")
    assert get(server.url).text == "v00"
    versions = [f"v{i:02d}" for i in range(REBUILDS + 1)]
    latencies = []
    with Load(server.url) as load:
        for i in range(1, REBUILDS + 1):
            way = WAYS[i % len(WAYS)]
            define = f'VERSION="{versions[i]}"'
            if way == "gcc -o":
                gcc(live, NATIVE_SOURCES / "version.c", define)
                # the linker's last write, not gcc's exit: it may already be answering
                written = time.monotonic() - (time.time() - live.stat().st_mtime)
            else:
                install(way, build_library("version.c", build_dir / f"{i}.so", define), live)
                written = time.monotonic()
            latencies.append(wait_for_version(server.url, versions[i], load, written))
    load.check(versions)
    assert load.bodies[versions[-1]] > 0
    report(f"native rebuilt {REBUILDS} times ({', '.join(WAYS)})", latencies, load)
    errors = server.errors()
    assert "killed by" not in errors
    # a reload starts once the writer has closed the file or renamed it into place: no
    # load ever meets a half-written library (the ELF check would refuse one)
    assert "reload failed" not in errors


def test_python_handler_edited_in_place_50_times_under_load(start_server, tmp_path):
    """Same-size edits within the same second: a bytecode cache keyed on mtime would go stale."""
    app = tmp_path / "app"
    app.mkdir()
    handler, helper = app / "ver.py", app / "vhelper.py"
    source = "from vhelper import PREFIX\n\nVERSION = {!r}\n\n\ndef handle_request(request):\n    return PREFIX + VERSION\n"
    helper.write_text("PREFIX = 'a00-'\n")
    handler.write_text(source.format("v00"))
    server = start_server(f"/ = {handler}\n", env={"PYTHONDONTWRITEBYTECODE": ""})
    states = [("a00-", "v00")]
    for i in range(1, REBUILDS + 1):
        prefix, version = states[-1]
        states.append((f"a{i:02d}-", version) if i % 5 == 0 else (prefix, f"v{i:02d}"))
    bodies = [prefix + version for prefix, version in states]
    assert get(server.url).text == bodies[0]
    latencies = []
    with Load(server.url) as load:
        for i in range(1, REBUILDS + 1):
            prefix, version = states[i]
            if i % 5 == 0:  # the module it imports from its own folder
                helper.write_text(f"PREFIX = {prefix!r}\n")
            else:
                handler.write_text(source.format(version))
            written = time.monotonic()
            latencies.append(wait_for_version(server.url, bodies[i], load, written))
    load.check(bodies)
    report(f"python handler edited {REBUILDS} times", latencies, load)
    assert "reload failed" not in server.errors()


def test_a_handler_file_still_being_written_is_never_loaded(start_server, tmp_path):
    """Half a module stays unloaded until its writer closes it; a log appended beside the
    handlers reloads nothing. Once /b answers its new version, the worker has handled every
    event before it (one folder's events come in order)."""
    app, other = tmp_path / "app", tmp_path / "other"
    app.mkdir()
    other.mkdir()  # not beside a.py: its change would reload a (a folder's modules are watched)
    source = "def handle_request(request):\n    return {!r}\n"
    a, b = app / "a.py", other / "b.py"
    a.write_text(source.format("a1"))
    b.write_text(source.format("b1"))
    server = start_server(f"/a = {a}\n/b = {b}\n", "--workers", "1")
    assert get(server.url + "/a").text == "a1" and get(server.url + "/b").text == "b1"
    with open(app / "access.log", "a") as log:
        for n in range(1000):
            log.write(f"line {n}\n")
            log.flush()
    with open(a, "w") as half:
        half.write("def handle_request(request):\n")  # loaded now, a SyntaxError
        half.flush()
        b.write_text(source.format("b2"))
        wait_for_version(server.url + "/b", "b2", None, time.monotonic())
        assert get(server.url + "/a").text == "a1"
        half.write("    return 'a2'\n")
    wait_for_version(server.url + "/a", "a2", None, time.monotonic())
    errors = server.errors()
    assert "reload failed" not in errors
    assert len(re.findall(r"reloading .*/a\.py", errors)) == 1
    assert len(re.findall(r"reloading .*/b\.py", errors)) == 1


def test_request_in_flight_finishes_on_the_old_version(start_server, tmp_path):
    live = inflight_library(tmp_path, tmp_path / "live" / "libslow.so", "old")
    other = tmp_path / "other.py"
    other.write_text("def handle_request(request):\n    return 'other'\n")
    server = start_server(f"/other = {other}\n/ = {live}\n")
    assert get(server.url).text == "old" and get(server.url + "/other").text == "other"
    mark = tmp_path / "in-flight"
    slow: dict[str, requests.Response] = {}
    thread = threading.Thread(
        target=lambda: slow.update(r=get(server.url, **{"x-slow": "2000", "x-mark": str(mark)}))
    )
    thread.start()
    wait_until(mark.exists, what="the slow request to be running in the library")
    new = inflight_library(tmp_path, tmp_path / "build" / "new.so", "new")
    install("in place", new, live)  # over the file the running request was loaded from
    server.wait_for_log(r"draining .*libslow\.so: 1 request")
    other_answer = get(server.url + "/other").text
    assert thread.is_alive(), "the slow request ended before the drain could be observed"
    assert other_answer == "other"  # another handler is not held up by the drain
    assert get(server.url).text == "new"
    thread.join(15)
    assert slow["r"].status_code == 200 and slow["r"].text == "old"
    assert "killed by" not in server.errors()


def test_drain_wait_is_bounded(start_server, tmp_path):
    """A long request keeps its old version, but new requests do not wait for it to end."""
    live = inflight_library(tmp_path, tmp_path / "live" / "libslow.so", "old")
    server = start_server(f"/ = {live}\n")
    assert get(server.url).text == "old"
    mark = tmp_path / "in-flight"
    slow: dict[str, requests.Response] = {}
    thread = threading.Thread(
        target=lambda: slow.update(r=get(server.url, **{"x-slow": "8000", "x-mark": str(mark)}))
    )
    thread.start()
    wait_until(mark.exists, what="the slow request to be running in the library")
    install("rename", inflight_library(tmp_path, tmp_path / "build" / "new.so", "new"), live)
    server.wait_for_log(r"draining .*libslow\.so: 1 request")
    assert get(server.url).text == "new"
    assert thread.is_alive(), "the new version must answer before the slow request ends"
    server.wait_for_log(r"libslow\.so: 1 request\(s\) still running after 1s")
    thread.join(15)
    assert slow["r"].status_code == 200 and slow["r"].text == "old"
    server.wait_for_log(r"closed an old version of .*libslow\.so: its last request finished")


def test_broken_new_version_keeps_the_old_one_serving(start_server, tmp_path):
    live = tmp_path / "live" / "libversion.so"
    build_library("version.c", live, 'VERSION="v1"')
    handler = tmp_path / "py" / "handler.py"
    handler.parent.mkdir()
    handler.write_text("def handle_request(request):\n    return 'p1'\n")
    server = start_server(f"/py = {handler}\n/ = {live}\n")
    assert get(server.url).text == "v1" and get(server.url + "/py").text == "p1"
    pids = server.worker_pids()
    build = tmp_path / "build"
    v2 = build_library("version.c", build / "v2.so", 'VERSION="v2"')
    no_symbol = build_library("no_symbol.c", build / "no_symbol.so")

    # a truncated library (a copy cut short): mapping it past its end would SIGBUS
    data = v2.read_bytes()
    live.write_bytes(data[: len(data) // 2])
    server.wait_for_log(r"reload failed, version 1 keeps serving: .*libversion\.so")
    assert get(server.url).text == "v1"
    install("in place", v2, live)
    assert wait_for_version(server.url, "v2", None, time.monotonic()) < 10

    # a library without handle_request
    install("rename", no_symbol, live)
    server.wait_for_log(r"reload failed, version 2 keeps serving: .*handle_request")
    assert get(server.url).text == "v2"
    gcc(live, NATIVE_SOURCES / "version.c", 'VERSION="v3"')
    wait_for_version(server.url, "v3", None, time.monotonic())

    # a Python syntax error, then the fix
    handler.write_text("def handle_request(request)\n    return 'p2'\n")
    server.wait_for_log(r"reload failed, version 1 keeps serving: .*handler\.py.*SyntaxError")
    assert get(server.url + "/py").text == "p1"
    handler.write_text("def handle_request(request):\n    return 'p2'\n")
    wait_for_version(server.url + "/py", "p2", None, time.monotonic())

    assert server.worker_pids() == pids, "a broken version must not cost a worker"


# -- SIGHUP ---------------------------------------------------------------------------


def test_sighup_ten_times_under_load(start_server, tmp_path):
    keep = build_library("version.c", tmp_path / "lib" / "libkeep.so", 'VERSION="keep"')
    for name in ("gone", "new"):
        (tmp_path / f"{name}.py").write_text(f"def handle_request(request):\n    return {name!r}\n")
    keep_line, gone_line, new_line = (
        f"/keep = {keep}   # loaded once, kept by every reload",
        f"/gone = {tmp_path / 'gone.py'}",
        f"/new = {tmp_path / 'new.py'}",
    )
    server = start_server(f"{keep_line}\n{gone_line}\n", "--workers", "2")
    assert get(server.url + "/gone").text == "gone"
    # every step: (config, {path: expected body, or 404})
    steps = [
        ([keep_line, gone_line], {"/gone": "gone", "/new": 404}),
        ([keep_line, gone_line, new_line], {"/gone": "gone", "/new": "new"}),
        (["# comments only change", keep_line, new_line, gone_line], {"/new": "new"}),
        ([keep_line, new_line], {"/gone": 404, "/new": "new"}),
        ([keep_line, new_line, "this line has no equals sign"], None),  # rejected: line 3
        ([new_line, keep_line], {"/gone": 404, "/new": "new"}),
        ([new_line, "", keep_line], {"/gone": 404, "/new": "new"}),
        ([keep_line, new_line, gone_line], {"/gone": "gone", "/new": "new"}),
        ([keep_line, gone_line], {"/gone": "gone", "/new": 404}),
        ([keep_line, gone_line], {"/gone": "gone", "/new": 404}),
    ]
    reloaded = r"SIGHUP: .* reloaded"  # a worker applied the new table
    rejected = r"SIGHUP: config rejected, workers keep the old routes"  # the master refused it
    applied = 0
    with Load(server.url + "/keep", threads=3) as load:
        for number, (lines, expected) in enumerate(steps, 1):
            server.config.write_text("\n".join(lines) + "\n")
            server.signal(signal.SIGHUP)
            if expected is None:
                log = server.wait_for_log(rejected)
                assert re.search(rf"config rejected.*{re.escape(str(server.config))}:3:", log)
                continue
            applied += 1
            server.wait_for_log(reloaded, count=2 * applied)  # both workers
            for _ in range(4):  # fresh connections, so both workers are asked
                for path, answer in expected.items():
                    response = get(server.url + path)
                    if answer == 404:
                        assert response.status_code == 404, (number, path)
                    else:
                        assert response.text == answer, (number, path)
    load.check(["keep"])
    errors = server.errors()
    loads = collections.Counter(re.findall(r"flexilib\[(\d+)\]: loaded .*libkeep\.so", errors))
    assert loads and set(loads.values()) == {1}, loads  # once per worker that served it, ever
    assert not re.search(r"(reloading|swapped|draining) .*libkeep\.so", errors)
    print(f"\nSIGHUP x{len(steps)}: {load.total} requests served under load, 0 failed")


def test_request_routed_before_sighup_is_answered_by_the_removed_handler(start_server, tmp_path):
    """Its head was routed by the old table; its body arrives after the route is gone."""
    gone = tmp_path / "gone.py"
    gone.write_text("def handle_request(request):\n    return b'gone:' + request.body\n")
    other = tmp_path / "other.py"
    other.write_text("def handle_request(request):\n    return 'other'\n")
    server = start_server(f"/gone = {gone}\n/ = {other}\n")
    assert get(server.url + "/gone").text == "gone:"
    client = RawClient(server.port)
    client.send(
        b"POST /gone HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    assert client.read_response().status == 100  # its head is in, and routed
    server.config.write_text(f"/ = {other}\n")
    server.signal(signal.SIGHUP)
    server.wait_for_log(r"SIGHUP: .* reloaded")
    client.send(b"ping")
    response = client.read_response()
    assert (response.status, response.body) == (200, b"gone:ping")
    client.close()
    assert get(server.url + "/gone").text == "other"


# -- supervisor: crashes --------------------------------------------------------------


@pytest.fixture
def crash_lib(tmp_path):
    """A handler that kills its worker process on `x-crash` (a Python one: a crash inside a
    native library also quarantines the library, tests/e2e/test_quarantine.py)."""
    handler = tmp_path / "crash.py"
    handler.write_text(CRASH_HANDLER)
    return handler


def test_crash_replaces_the_worker_and_spares_the_other(start_server, tmp_path, crash_lib):
    (tmp_path / "pid.py").write_text(PID_HANDLER)
    server = start_server(f"/pid = {tmp_path / 'pid.py'}\n/ = {crash_lib}\n", "--workers", "2")
    wait_until(lambda: len(server.worker_pids()) == 2, what="two workers")

    def pinned() -> tuple[RawClient, int]:
        client = RawClient(server.port)
        client.send(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        return client, int(client.read_response().body)

    survivor, survivor_pid = pinned()
    victim, victim_pid = pinned()
    for _ in range(200):  # accepts are spread by the kernel: find a connection to the other
        if victim_pid != survivor_pid:
            break
        victim.close()
        victim, victim_pid = pinned()
    assert victim_pid != survivor_pid, "no connection reached the second worker"

    answers, errors, stop = [], [], threading.Event()

    def keep_asking() -> None:  # the surviving worker's keep-alive connection, all along
        while not stop.is_set() and len(answers) < 100_000:
            try:
                survivor.send(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
                answers.append(survivor.read_response().body)
            except OSError as exc:
                errors.append(repr(exc))
                return

    asker = threading.Thread(target=keep_asking)
    asker.start()
    wait_until(lambda: len(answers) > 10, what="the survivor to answer")
    victim.send(b"GET / HTTP/1.1\r\nHost: x\r\nx-crash: 1\r\n\r\n")
    with pytest.raises((ConnectionError, OSError)):
        victim.read_response()
    victim.close()
    server.wait_for_log(rf"\(pid {victim_pid}\) killed by SIGABRT .*restarting now")
    wait_until(
        lambda: len(pids := server.worker_pids()) == 2 and victim_pid not in pids,
        what="the worker to be replaced",
    )
    new_pid = (set(server.worker_pids()) - {survivor_pid}).pop()
    server.wait_for_log(rf"started \(pid {new_pid}\)")
    counted = len(answers)
    wait_until(lambda: len(answers) > counted + 10, what="the survivor to keep answering")
    stop.set()
    asker.join(15)
    survivor.close()
    assert not errors, errors
    assert set(answers) == {str(survivor_pid).encode()}
    for _ in range(10):  # fresh connections: every one succeeds, on either worker
        assert get(server.url).text == "alive"
        assert int(get(server.url + "/pid").text) in (survivor_pid, new_pid)


def test_single_worker_crash_is_healed(start_server, crash_lib):
    server = start_server(f"/ = {crash_lib}\n")
    assert get(server.url).text == "alive"
    (old,) = server.worker_pids()
    with pytest.raises(requests.ConnectionError):
        get(server.url, **{"x-crash": "1"})
    server.wait_for_log(rf"\(pid {old}\) killed by SIGABRT")
    assert get(server.url).text == "alive"  # waits in the backlog while the worker restarts
    (new,) = server.worker_pids()
    assert new != old


def test_repeated_crashes_back_off(start_server, crash_lib):
    server = start_server(f"/ = {crash_lib}\n")
    for crash in range(1, 5):
        server.wait_for_log(r"worker 0 started", count=crash)
        with pytest.raises(requests.ConnectionError):
            get(server.url, **{"x-crash": "1"})
        server.wait_for_log(r"killed by SIGABRT", count=crash)
    server.wait_for_log(r"worker 0 started", count=5, timeout=15)
    delays = [
        0.0 if when == "now" else float(when.removeprefix("in ").removesuffix("s"))
        for when in re.findall(
            r"killed by SIGABRT .*; restarting (now|in [\d.]+s)", server.errors()
        )
    ]
    assert len(delays) == 4 and delays[0] == 0.0
    assert delays == sorted(delays) and len(set(delays)) == 4, delays
    assert get(server.url).text == "alive"


# -- graceful stop -------------------------------------------------------------------


def start_slow(url: str, marks: list[Path], slow_ms: int) -> tuple[list[threading.Thread], dict]:
    """One thread per mark, each a slow request; returns when all are running in the library."""
    results: dict[int, object] = {}

    def run(i: int, mark: Path) -> None:
        try:
            results[i] = get(url, **{"x-slow": str(slow_ms), "x-mark": str(mark)})
        except requests.RequestException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, m)) for i, m in enumerate(marks)]
    for thread in threads:
        thread.start()
    wait_until(lambda: all(m.exists() for m in marks), what="the slow requests to be running")
    return threads, results


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT to the process group"])
def test_stop_lets_requests_in_flight_finish(start_server, tmp_path, how):
    live = inflight_library(tmp_path, tmp_path / "lib" / "libslow.so", "done")
    server = start_server(f"/ = {live}\n", "--workers", "2")
    idle = RawClient(server.port)
    idle.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.read_response().body == b"done"
    marks = [tmp_path / f"mark{i}" for i in range(3)]
    threads, results = start_slow(server.url, marks, 1500)
    if how == "SIGTERM":
        server.signal(signal.SIGTERM)
    else:  # Ctrl-C in a terminal: master and workers get SIGINT at once
        os.killpg(server.process.pid, signal.SIGINT)
    wait_until(lambda: refused(server.port), what="new connections to be refused")
    assert idle.closed_by_peer(), "an idle keep-alive connection must be closed"
    for thread in threads:
        thread.join(15)
    for i in range(len(marks)):
        response = results[i]
        assert isinstance(response, requests.Response), response
        assert (response.status_code, response.text) == (200, "done")
        assert response.headers["Connection"] == "close"
    assert server.process.wait(15) == 0
    assert "stopped" in server.errors()


def test_second_signal_stops_at_once(start_server, tmp_path):
    live = inflight_library(tmp_path, tmp_path / "lib" / "libslow.so", "done")
    server = start_server(f"/ = {live}\n")
    threads, results = start_slow(server.url, [tmp_path / "mark"], 60_000)
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    server.wait_for_log(r"stopping")
    server.signal(signal.SIGTERM)
    server.process.wait(10)
    assert time.monotonic() - started < 10  # long before the slow request would end
    threads[0].join(10)
    assert isinstance(results[0], requests.ConnectionError)


def test_grace_period_bounds_the_wait(start_server, tmp_path):
    live = inflight_library(tmp_path, tmp_path / "lib" / "libslow.so", "done")
    server = start_server(f"/ = {live}\n", "--grace-period", "1")
    threads, results = start_slow(server.url, [tmp_path / "mark"], 60_000)
    server.signal(signal.SIGTERM)
    assert server.process.wait(15) == 0
    server.wait_for_log(r"grace period over: closing 1 connection")
    threads[0].join(10)
    assert isinstance(results[0], requests.ConnectionError)
