"""Load balancing: picking an endpoint of a cluster, and a backend (weighted cluster) of a route."""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from nantian.ir import LoadBalancer

__all__ = ["EndpointPicker", "WeightedChoice"]

T = TypeVar("T")


class WeightedChoice(Generic[T]):
    """Pick one of ``items`` with probability proportional to its weight; weight 0 is never picked.

    ``pick`` returns ``None`` when every weight is 0 (nothing may be picked).
    """

    __slots__ = ("_cumulative", "_items", "_random", "_single", "_total")

    def __init__(self, items: Sequence[tuple[T, int]], rng: Callable[[], float] = random.random) -> None:
        kept = [(item, w) for item, w in items if w > 0]
        self._items = [item for item, _ in kept]
        self._cumulative = list(itertools.accumulate(w for _, w in kept))
        self._total = self._cumulative[-1] if kept else 0
        self._single = self._items[0] if len(self._items) == 1 else None
        self._random = rng

    def pick(self) -> T | None:
        if self._single is not None:
            return self._single
        if not self._total:
            return None
        return self._items[bisect.bisect_right(self._cumulative, self._random() * self._total)]


class EndpointPicker(Generic[T]):
    """Pick an endpoint of one cluster by the cluster's :class:`~nantian.ir.LoadBalancer`.

    Round robin is smooth weighted round robin (equal weights: a plain rotation); random is weighted; least
    request compares ``load(endpoint)`` of two weighted-random candidates (power of two choices).
    Endpoints with weight 0 are never picked. ``pick`` returns ``None`` when there is no endpoint.
    """

    __slots__ = ("_choice", "_current", "_items", "_load", "_next", "_policy", "_total", "_weights")

    def __init__(
        self,
        items: Sequence[tuple[T, int]],
        policy: LoadBalancer = LoadBalancer.ROUND_ROBIN,
        load: Callable[[T], int] | None = None,
    ) -> None:
        kept = [(item, w) for item, w in items if w > 0]
        self._items = [item for item, _ in kept]
        self._weights = [w for _, w in kept]
        self._total = sum(self._weights)
        self._current = [0] * len(kept)
        self._next = 0
        self._policy = policy
        self._load = load
        self._choice = WeightedChoice(kept)

    def __len__(self) -> int:
        return len(self._items)

    def pick(self) -> T | None:
        items = self._items
        n = len(items)
        if n <= 1:
            return items[0] if n else None
        if self._policy is LoadBalancer.RANDOM:
            return self._choice.pick()
        if self._policy is LoadBalancer.LEAST_REQUEST and self._load is not None:
            a, b = self._choice.pick(), self._choice.pick()
            assert a is not None and b is not None
            return a if self._load(a) <= self._load(b) else b
        if len(set(self._weights)) == 1:
            i = self._next
            self._next = (i + 1) % n
            return items[i]
        # smooth weighted round robin (nginx): deterministic, interleaved
        current = self._current
        best = 0
        for i, w in enumerate(self._weights):
            current[i] += w
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        return items[best]
