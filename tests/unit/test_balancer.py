"""The proxy's balancer: least outstanding requests, round robin among equals."""

from __future__ import annotations

from collections import Counter

import pytest

from flexilib.kinds.proxy.upstream import Balancer, Upstream


def pool(count: int) -> list[Upstream]:
    return [Upstream(f"http://127.0.0.1:{9000 + i}") for i in range(count)]


def share(balancer: Balancer, requests: int, now: float = 0.0) -> Counter:
    """Which upstream each of `requests` sequential requests (each done before the next) got."""
    return Counter(balancer.pick(now, []).port for _ in range(requests))


def test_equal_load_is_plain_round_robin():
    upstreams = pool(3)
    balancer = Balancer(upstreams, fail_timeout=10)
    order = [balancer.pick(0.0, []).port for _ in range(6)]
    assert order == [9000, 9001, 9002, 9000, 9001, 9002]


@pytest.mark.parametrize("dead", [0, 1, 2])
def test_a_dead_upstreams_turn_is_not_given_to_its_neighbour(dead):
    upstreams = pool(3)
    balancer = Balancer(upstreams, fail_timeout=10)
    assert balancer.failed(upstreams[dead], now=0.0)
    live = [u.port for i, u in enumerate(upstreams) if i != dead]
    assert share(balancer, 8, now=1.0) == {live[0]: 4, live[1]: 4}


def test_a_dead_upstream_comes_back_after_fail_timeout():
    upstreams = pool(2)
    balancer = Balancer(upstreams, fail_timeout=10)
    balancer.failed(upstreams[0], now=0.0)
    assert share(balancer, 4, now=5.0) == {9001: 4}
    assert share(balancer, 4, now=10.5) == {9000: 2, 9001: 2}


def test_fewest_outstanding_wins_over_the_turn():
    upstreams = pool(3)
    balancer = Balancer(upstreams, fail_timeout=10)
    upstreams[0].outstanding = upstreams[1].outstanding = 2
    assert balancer.pick(0.0, []) is upstreams[2]


def test_a_retry_skips_what_it_tried_and_a_single_upstream_is_never_taken_out():
    upstreams = pool(2)
    balancer = Balancer(upstreams, fail_timeout=10)
    first = balancer.pick(0.0, [])
    assert balancer.pick(0.0, [first]) is not first
    assert balancer.pick(0.0, upstreams) is None
    single = Balancer(pool(1), fail_timeout=10)
    assert not single.failed(single.upstreams[0], now=0.0)
    assert single.pick(1.0, []) is single.upstreams[0]
