"""Endpoint picking and weighted backend choice."""

from __future__ import annotations

import collections
import random

from nantian.ir import LoadBalancer
from nantian.proxy.balancer import EndpointPicker, WeightedChoice


def test_weighted_choice_follows_weights_and_skips_zero() -> None:
    rng = random.Random(7)
    c = WeightedChoice([("a", 1), ("b", 3), ("z", 0)], rng=rng.random)
    counts = collections.Counter(c.pick() for _ in range(4000))
    assert "z" not in counts
    assert 0.2 < counts["a"] / 4000 < 0.3


def test_weighted_choice_all_zero_picks_nothing() -> None:
    assert WeightedChoice([("a", 0)]).pick() is None
    assert WeightedChoice([]).pick() is None


def test_round_robin_rotates_equal_weights() -> None:
    p = EndpointPicker([("a", 1), ("b", 1), ("c", 1)])
    assert [p.pick() for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]


def test_smooth_weighted_round_robin_interleaves() -> None:
    p = EndpointPicker([("a", 5), ("b", 1), ("c", 1)])
    picks = [p.pick() for _ in range(7)]
    assert collections.Counter(picks) == {"a": 5, "b": 1, "c": 1}
    assert picks[:3] != ["a", "a", "a"] or picks[3] != "a"  # not all of a's share in one run


def test_least_request_prefers_the_less_loaded() -> None:
    load = {"a": 10, "b": 0}
    p = EndpointPicker([("a", 1), ("b", 1)], LoadBalancer.LEAST_REQUEST, load=load.__getitem__)
    picks = collections.Counter(p.pick() for _ in range(200))
    assert picks["b"] > picks["a"]


def test_empty_and_zero_weight_endpoints() -> None:
    assert EndpointPicker([]).pick() is None
    assert EndpointPicker([("a", 0)]).pick() is None
    assert EndpointPicker([("a", 0), ("b", 2)]).pick() == "b"
