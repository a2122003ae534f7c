"""Coarse deadlines for many requests with one loop timer (the fast path's request and backend timeouts).

A loop timer per request costs more than the rest of a proxied request's bookkeeping (uvloop allocates a libuv
timer for each). Requests here go into buckets of ``RESOLUTION`` seconds; one loop timer is armed for the earliest
bucket and expires whole buckets, so a timeout fires between 0 and ``RESOLUTION`` seconds late. Cancelling is
removing the item from its bucket. :class:`Deadline` is ``asyncio.timeout`` on the same buckets, for coroutines
(the general path's request and backend timeouts): ``asyncio.timeout`` costs about 5 us per use with uvloop.
"""

from __future__ import annotations

import asyncio
import heapq
import weakref
from types import TracebackType
from typing import Any, Final, Protocol

__all__ = ["RESOLUTION", "Deadline", "Deadlines", "Expirable", "for_loop"]

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

    def now(self) -> float:
        """The loop's time."""
        return self._loop.time()

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


_LOOP_DEADLINES: Final[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines]] = weakref.WeakKeyDictionary()


def for_loop(loop: asyncio.AbstractEventLoop) -> Deadlines:
    """The :class:`Deadlines` shared by everything on ``loop``."""
    found = _LOOP_DEADLINES.get(loop)
    if found is None:
        found = _LOOP_DEADLINES[loop] = Deadlines(loop)
    return found


class Deadline:
    """``async with Deadline(deadlines, seconds):`` -- what ``asyncio.timeout(seconds)`` does, on the shared buckets.

    When the time has passed (up to ``RESOLUTION`` late), the task is cancelled and the block ends with
    :class:`TimeoutError`; a cancellation from elsewhere stays a cancellation (the same ``cancelling()`` /
    ``uncancel()`` bookkeeping as ``asyncio.timeout``). Use it inside a task, once.
    """

    __slots__ = ("_bucket", "_cancelling", "_deadlines", "_delay", "_expiring", "_task")

    def __init__(self, deadlines: Deadlines, delay: float) -> None:
        self._deadlines = deadlines
        self._delay = delay
        self._task: asyncio.Task[Any] | None = None
        self._bucket: set[Expirable] | None = None
        self._expiring = False
        self._cancelling = 0

    async def __aenter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        deadlines = self._deadlines
        self._bucket = deadlines.add(deadlines.now() + self._delay, self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        bucket = self._bucket
        if bucket is not None:
            self._bucket = None
            bucket.discard(self)
        if self._expiring:
            self._expiring = False
            task = self._task
            if task is not None and task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def expire(self) -> None:
        """The time has passed: cancel the task (its block then ends with :class:`TimeoutError`)."""
        self._bucket = None
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            self._expiring = True
