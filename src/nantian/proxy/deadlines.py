"""Coarse deadlines for many requests with one loop timer (the fast path's request and backend timeouts).

A loop timer per request costs more than the rest of a proxied request's bookkeeping (uvloop allocates a libuv
timer for each). Requests here go into buckets of ``RESOLUTION`` seconds; one loop timer is armed for the earliest
bucket and expires whole buckets, so a timeout fires between 0 and ``RESOLUTION`` seconds late. Cancelling is
removing the item from its bucket.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Final, Protocol

__all__ = ["RESOLUTION", "Deadlines", "Expirable"]

RESOLUTION: Final = 0.01
_PER_SECOND: Final = round(1 / RESOLUTION)


class Expirable(Protocol):
    """Something with a deadline: :meth:`expire` is called once it has passed (unless cancelled first)."""

    def expire(self) -> None: ...


class Deadlines:
    """Deadlines of one event loop. :meth:`add` returns the bucket; ``bucket.discard(item)`` cancels."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buckets: dict[int, set[Expirable]] = {}
        self._slots: list[int] = []
        self._handle: asyncio.TimerHandle | None = None
        self._armed: int | None = None

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def add(self, deadline: float, item: Expirable) -> set[Expirable]:
        """Call ``item.expire()`` at ``deadline`` (loop time) or up to ``RESOLUTION`` later."""
        slot = int(deadline * _PER_SECOND) + 1
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
            heapq.heappush(self._slots, slot)
            if self._armed is None or slot < self._armed:
                self._arm(slot)
        bucket.add(item)
        return bucket

    def _arm(self, slot: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed = slot
        self._handle = self._loop.call_at(slot / _PER_SECOND, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed = None
        now = self._loop.time() * _PER_SECOND
        slots = self._slots
        expired: list[Expirable] = []
        while slots and slots[0] <= now:
            bucket = self._buckets.pop(heapq.heappop(slots), None)
            if bucket:
                expired.extend(bucket)
        if slots:
            self._arm(slots[0])
        for item in expired:
            item.expire()

    def close(self) -> None:
        """Forget every deadline (nothing expires any more)."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._armed = None
        self._buckets.clear()
        self._slots.clear()
