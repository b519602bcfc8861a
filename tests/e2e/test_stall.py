"""No client can stall a worker through the inline fast path, exhaust the pool, or hang a handler.

Each test holds a slow request in flight and checks that other requests are
answered while it is still running: an ordering, not a timing.
"""

from __future__ import annotations

import threading

import requests
from conftest import REPO, build_library, wait_until

SPIN = REPO / "tests" / "handlers" / "spin.py"


class Slow(threading.Thread):
    """One request in a thread; `done` once it has its answer."""

    def __init__(self, method: str, url: str, **kwargs) -> None:
        super().__init__(daemon=True)
        self.method, self.url, self.kwargs = method, url, kwargs
        self.response: requests.Response | None = None
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            self.response = requests.request(self.method, self.url, timeout=30, **self.kwargs)
        finally:
            self.done.set()


def _promote(url: str, **kwargs) -> None:
    """Ten fast exact repeats: the dispatcher now runs this request inline."""
    for _ in range(10):
        assert requests.request(url=url, timeout=5, **kwargs).text == "quick"


def test_a_slow_query_after_fast_ones_runs_on_the_pool_not_the_loop(start_server, tmp_path):
    lib = build_library("stall.c", tmp_path / "libstall.so")
    server = start_server(f"/ = {lib}\n")
    mark = tmp_path / "running"
    _promote(server.url + "/x?sleep=0", method="GET", headers={"x-mark": str(mark)})
    slow = Slow("GET", server.url + "/x?sleep=3000", headers={"x-mark": str(mark)})
    wait_until(mark.exists, what="the slow call running")
    # the same route answers others at once while the slow call runs
    fast = requests.get(server.url + "/x?sleep=0", headers={"x-mark": str(mark)}, timeout=5)
    assert fast.text == "quick"
    assert not slow.done.is_set(), "the slow call should still be running"
    slow.done.wait(10)
    assert slow.response.text == "slept"


def test_a_slow_body_after_fast_ones_runs_on_the_pool_not_the_loop(start_server, tmp_path):
    lib = build_library("stall.c", tmp_path / "libstall.so")
    server = start_server(f"/ = {lib}\n")
    mark = tmp_path / "running"
    _promote(server.url + "/x", method="POST", data=b"sleep=0", headers={"x-mark": str(mark)})
    slow = Slow("POST", server.url + "/x", data=b"sleep=3000", headers={"x-mark": str(mark)})
    wait_until(mark.exists, what="the slow call running")
    fast = requests.post(
        server.url + "/x", data=b"sleep=0", headers={"x-mark": str(mark)}, timeout=5
    )
    assert fast.text == "quick"
    assert not slow.done.is_set(), "the slow call should still be running"
    slow.done.wait(10)
    assert slow.response.text == "slept"


def test_one_route_cannot_take_every_thread_and_overflow_gets_503(start_server, tmp_path):
    lib = build_library("stall.c", tmp_path / "libstall.so")
    server = start_server(
        f"/slow = {lib} concurrency=2 queue=1\n/py = {REPO / 'tests' / 'handlers' / 'echo.py'}\n",
        "--threads",
        "2",
        "--max-threads",
        "4",
    )
    slow = [Slow("GET", server.url + f"/slow?sleep=3000&n={n}") for n in range(4)]
    # two run, one waits, the fourth is refused at once with Retry-After
    refused = wait_until(
        lambda: next((s for s in slow if s.done.is_set()), None), what="the refused request"
    )
    assert refused.response.status_code == 503
    assert refused.response.headers["Retry-After"] == "1"
    # meanwhile another route still has threads
    assert requests.get(server.url + "/py", timeout=5).status_code == 200
    assert sum(s.done.is_set() for s in slow) == 1
    for s in slow:
        s.done.wait(15)
    assert sorted(s.response.status_code for s in slow) == [200, 200, 200, 503]
    server.wait_for_log(r"concurrency=2, queue=1\): answered 503")


def test_handlers_have_timeouts_python_loops_are_interrupted(start_server, tmp_path):
    lib = build_library("stall.c", tmp_path / "libstall.so")
    server = start_server(
        f"/native = {lib} timeout=0.5 dispatch=pool\n/spin = {SPIN} timeout=0.5 dispatch=pool\n"
    )
    native = requests.get(server.url + "/native?sleep=3000", timeout=10)
    assert native.status_code == 504
    server.wait_for_log(r"no answer after 0.5s \(timeout=\): answered 504")
    spin = requests.get(server.url + "/spin?spin", timeout=10)
    assert spin.status_code == 504
    # the looping Python call was interrupted: its thread serves the next request
    for _ in range(3):
        assert requests.get(server.url + "/spin", timeout=5).text == "done"
