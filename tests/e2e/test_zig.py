"""Zig libraries written for the original FlexiLib: zigInit and the per-thread arena.

The libraries are built by the real Zig 0.13 compiler (the ziglang package of the
test extras) from tests/native/zig_*.zig and served by a real flexilib process. The
library reports what it observed of the allocator it got from zigInit (layout,
resize in place, free, alignment, which allocator and thread), so each behaviour of
the host side (src/flexilib/kinds/native/zigarena.c) is checked through Zig's own
`std.mem.Allocator` calls.
"""

from __future__ import annotations

import ctypes
import re
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import NATIVE_SOURCES, RawClient, build_zig_library, wait_until
from test_lifecycle import Load, install, report, wait_for_version

from flexilib.kinds.native import _native

LIMIT_KIB = 64 * 1024  # ZIG_ARENA_LIMIT in zigarena.h


@pytest.fixture(scope="module")
def zig_lib(tmp_path_factory) -> Path:
    """tests/native/zig_arena.zig, built once for this module (ReleaseSafe: Zig's checks on)."""
    return build_zig_library("zig_arena.zig", tmp_path_factory.mktemp("zig") / "libzigarena.so")


def op(server, name: str, **headers: str) -> requests.Response:
    headers = {key.replace("_", "-"): value for key, value in headers.items()}
    return requests.get(server.url + "/", headers={"x-op": name, **headers}, timeout=30)


def rss_kib(pid: int) -> int:
    """The worker's resident set, from /proc (VmRSS, in KiB)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))


def test_allocator_layout_is_what_the_server_hands_over(start_server, zig_lib):
    """The compiler's std.mem.Allocator / VTable layout is the one zigarena.c builds."""
    server = start_server(f"/ = {zig_lib}\n")
    answer = op(server, "layout")
    assert answer.status_code == 200
    assert answer.text == "ptr=0 vtable=8 size=16 alloc=0 resize=8 free=16 vtable_size=24"


def test_list_grows_in_place_then_moves_to_a_new_chunk(start_server, zig_lib):
    server = start_server(f"/ = {zig_lib}\n")
    count = 100_000  # 400 KB of u32: past the 8 KiB pre-warm, so chunks are added
    answer = op(server, "list", x_count=str(count))
    assert answer.status_code == 200, server.errors()
    fields = dict(item.split("=") for item in answer.text.split())
    assert int(fields["sum"]) == count * (count - 1) // 2  # every item intact after each move
    assert int(fields["in_place"]) > 0  # the most recent allocation grew where it was
    assert int(fields["moved"]) > 0  # and moved (copied by Zig) when its chunk was full


def test_resize_and_free_follow_the_arena_rules(start_server, zig_lib):
    """resize in place for the most recent allocation; free gives nothing back (zigarena.c)."""
    server = start_server(f"/ = {zig_lib}\n")
    assert op(server, "resize").text == (
        "last_grows=true other_grows=false other_shrinks=true last_shrinks=true"
    )
    assert op(server, "free").text == "reused=false overlaps=false"


def test_over_aligned_allocations(start_server, zig_lib):
    server = start_server(f"/ = {zig_lib}\n")
    answer = op(server, "align")
    assert answer.status_code == 200, server.errors()
    assert answer.text.split() == [f"{1 << n}:ok" for n in range(17)]


def test_access_log_reports_the_arena(start_server, zig_lib):
    """pre-alloc is the arena's pre-warm; alloc its capacity when the request ended."""
    server = start_server(f"/ = {zig_lib}\n", "--prealloc-kb", "16")
    assert op(server, "fill", x_kib="1").status_code == 200
    assert op(server, "fill", x_kib="64").status_code == 200
    lines = wait_until(lambda: len(server.access_lines()) >= 2 and server.access_lines())
    figures = [
        tuple(map(int, re.search(r"pre-alloc: (\d+), alloc: (\d+)", line).groups()))
        for line in lines
    ]
    assert figures[0][0] == figures[1][0] == 16 * 1024
    assert figures[0][1] >= 16 * 1024  # at least the pre-warm; more if this thread grew it before
    assert figures[1][1] >= 16 * 1024 + 64 * 1024  # the pre-warm plus a chunk for 64 KiB


def test_arena_figures_and_what_a_thread_keeps(zig_lib):
    """In process: `_native.call`'s figures on a fresh thread, and the 4 MiB kept at most."""
    lib = ctypes.CDLL(str(zig_lib))
    handle, zig_init = (
        ctypes.cast(f, ctypes.c_void_p).value for f in (lib.handle_request, lib.zigInit)
    )

    def fill(kib: int) -> tuple[int, int]:
        headers = [(b"x-op", b"fill"), (b"x-kib", str(kib).encode())]
        result = _native.call(handle, 0, b"GET", b"/", headers, b"", zig_init)
        assert result[2] == f"filled {kib} KiB".encode()
        return result[6], result[7]  # pre-alloc, alloc

    figures: list[tuple[int, int]] = []
    thread = threading.Thread(  # a thread of its own: an arena of its own, fresh
        target=lambda: figures.extend(fill(kib) for kib in (1, 64, 1, 5 * 1024, 1))
    )
    thread.start()
    thread.join(30)
    prewarm = 8 * 1024  # RESPONSE_PREALLOCATION_KB's default
    assert [pre for pre, _ in figures] == [prewarm] * 5
    small, grown, kept, big, after_big = (alloc for _, alloc in figures)
    assert small == prewarm  # 1 KiB fits the pre-warmed chunk
    assert grown >= prewarm + 64 * 1024
    assert kept == grown  # merged into one chunk and kept for the next request
    assert big >= 5 * 1024 * 1024
    assert after_big == 4 * 1024 * 1024  # kept at most: KEEP_LIMIT in zigarena.c


def test_memory_stays_flat_over_20000_requests(start_server, zig_lib):
    """64 KiB allocated and written per request, never freed by the library: 1.25 GiB in all."""
    server = start_server(f"/ = {zig_lib}\n")
    [worker] = server.worker_pids()
    request = b"GET / HTTP/1.1\r\nHost: x\r\nx-op: fill\r\nx-kib: 64\r\n\r\n"

    def run(count: int) -> None:
        client = RawClient(server.port)
        for _ in range(count):
            client.send(request)
            response = client.read_response()
            assert response.status == 200 and response.body == b"filled 64 KiB", response
        client.close()

    run(1000)  # every thread's arena, the dispatcher's classes and the log reach their size
    before = rss_kib(worker)
    run(20_000)
    after = rss_kib(worker)
    print(f"\nworker RSS before {before} KiB, after 20,000 requests of 64 KiB: {after} KiB")
    assert after - before < 4 * 1024, (before, after)
    assert server.worker_pids() == [worker]


def test_two_threads_never_share_an_arena(start_server, zig_lib, tmp_path):
    """A request holding arena memory keeps it intact while other threads allocate and reset.

    The pre-warm holds every request here in one chunk, so a reset only rewinds it:
    were the arena shared, the next request would write over the held buffer.
    """
    server = start_server(f"/ = {zig_lib}\n", "--prealloc-kb", "64")
    mark, release = tmp_path / "holding", tmp_path / "release"
    slow: dict[str, requests.Response] = {}
    holder = threading.Thread(
        target=lambda: slow.update(
            r=op(server, "hold", x_fill="s", x_mark=str(mark), x_release=str(release))
        )
    )
    holder.start()
    wait_until(mark.exists, what="the holding request to fill its buffer")
    fast = [op(server, "hold", x_fill="f") for _ in range(50)]  # served meanwhile, elsewhere
    release.touch()
    holder.join(15)
    assert slow["r"].status_code == 200 and slow["r"].text == "intact"
    assert all(r.status_code == 200 and r.text == "intact" for r in fast)
    held = (slow["r"].headers["X-Allocator"], slow["r"].headers["X-Thread"])
    others = {(r.headers["X-Allocator"], r.headers["X-Thread"]) for r in fast}
    assert held[0] not in {allocator for allocator, _ in others}
    assert held[1] not in {thread for _, thread in others}
    # one allocator per thread, the same one for every request on that thread
    assert len({allocator for allocator, _ in others}) == len({thread for _, thread in others})


def test_arena_exhaustion_is_a_500_and_a_log_line(start_server, zig_lib):
    server = start_server(f"/ = {zig_lib}\n")
    [worker] = server.worker_pids()
    assert op(server, "fill", x_kib="1").status_code == 200
    before = rss_kib(worker)
    over = op(server, "fill", x_kib=str(LIMIT_KIB + 1))  # one allocation past the limit
    assert over.status_code == 500
    server.wait_for_log(r"handle_request returned NULL after the Zig arena refused 1 allocation")
    # a list grown toward 120 MB: the arena fills to the limit, written through, then refuses
    grown = op(server, "list", x_count="30000000")
    assert grown.status_code == 500
    server.wait_for_log(
        r"refused 1 allocation\(s\) \(it holds \d+ bytes; the limit is 64 MiB", count=2
    )
    assert op(server, "fill", x_kib="64").text == "filled 64 KiB"  # the same worker goes on
    assert server.worker_pids() == [worker]
    # what a thread keeps after the request is bounded (4 MiB), not the 64 MiB it reached
    assert rss_kib(worker) - before < 16 * 1024
    assert "killed by" not in server.errors()


def test_zig_library_swapped_under_load_loses_nothing(start_server, tmp_path):
    """Rebuilt versions installed while clients request: every answer is a whole version."""
    template = (NATIVE_SOURCES / "zig_version.zig").read_text()
    versions = [f"zig-v{i}" for i in range(7)]
    built = []
    for version in versions:  # ReleaseFast: each builds in well under a second
        source = tmp_path / "src" / f"{version}.zig"
        source.parent.mkdir(exist_ok=True)
        source.write_text(template.replace('"zig-v0"', f'"{version}"'))
        built.append(
            build_zig_library(source, tmp_path / "build" / f"lib{version}.so", "ReleaseFast")
        )
    live = tmp_path / "live" / "libzigversion.so"
    live.parent.mkdir()
    live.write_bytes(built[0].read_bytes())
    server = start_server(f"/ = {live}\n")
    assert requests.get(server.url, timeout=10).text == versions[0]
    ways = ("in place", "rename", "recreate")
    latencies = []
    with Load(server.url) as load:
        for i in range(1, len(versions)):
            install(ways[i % len(ways)], built[i], live)
            latencies.append(wait_for_version(server.url, versions[i], load, time.monotonic()))
    load.check(versions)
    assert load.bodies[versions[-1]] > 0
    report(f"zig library swapped {len(versions) - 1} times", latencies, load)
    assert "killed by" not in server.errors()
