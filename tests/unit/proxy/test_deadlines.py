"""Coarse deadlines: one loop timer, buckets of RESOLUTION seconds, cancel by discarding."""

from __future__ import annotations

import asyncio

import pytest

from nantian.proxy.deadlines import RESOLUTION, Deadline, Deadlines, for_loop


class _Item:
    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, fired: list[tuple[str, float]]) -> None:
        self.loop = loop
        self.name = name
        self.fired = fired

        self.event = asyncio.Event()

    def expire(self) -> None:
        self.fired.append((self.name, self.loop.time()))
        self.event.set()


async def test_items_expire_in_order_no_earlier_than_their_deadline_and_cancelled_ones_never() -> None:
    loop = asyncio.get_running_loop()
    fired: list[tuple[str, float]] = []
    d = Deadlines(loop)
    t0 = loop.time()
    last = _Item(loop, "late", fired)
    d.add(t0 + 0.15, last)
    d.add(t0 + 0.05, _Item(loop, "early", fired))
    cancelled = _Item(loop, "cancelled", fired)
    d.add(t0 + 0.1, cancelled).discard(cancelled)
    assert len(d) == 2
    async with asyncio.timeout(2):
        await last.event.wait()
    assert [name for name, _ in fired] == ["early", "late"]
    assert fired[0][1] >= t0 + 0.05 and fired[1][1] >= t0 + 0.15
    assert fired[1][1] < t0 + 0.15 + RESOLUTION + 0.1  # at most one bucket late (plus scheduling slack)
    assert len(d) == 0


async def test_close_forgets_everything() -> None:
    loop = asyncio.get_running_loop()
    fired: list[tuple[str, float]] = []
    d = Deadlines(loop)
    d.add(loop.time() + 0.02, _Item(loop, "x", fired))
    d.close()
    await asyncio.sleep(0.06)
    assert fired == []


# --- Deadline: asyncio.timeout on the buckets ------------------------------------------------------------------
async def test_deadline_ends_a_block_that_runs_too_long_with_timeout_error() -> None:
    loop = asyncio.get_running_loop()
    d = for_loop(loop)
    assert for_loop(loop) is d  # one per loop
    t0 = loop.time()
    with pytest.raises(TimeoutError):
        async with Deadline(d, 0.05):
            await asyncio.sleep(5)
    elapsed = loop.time() - t0
    assert 0.05 <= elapsed < 0.05 + RESOLUTION + 0.2
    assert len(d) == 0
    await asyncio.sleep(0.01)  # the task is not cancelled again afterwards
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_deadline_lets_a_quick_block_finish_and_forgets_it() -> None:
    d = for_loop(asyncio.get_running_loop())
    async with Deadline(d, 5.0):
        await asyncio.sleep(0.01)
        value = 42
    assert value == 42 and len(d) == 0


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    d = for_loop(asyncio.get_running_loop())
    entered = asyncio.Event()

    async def work() -> None:
        async with Deadline(d, 5.0):
            entered.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(work())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(d) == 0


async def test_the_inner_of_two_deadlines_fires_and_the_outer_block_goes_on() -> None:
    d = for_loop(asyncio.get_running_loop())
    async with Deadline(d, 5.0):
        with pytest.raises(TimeoutError):
            async with Deadline(d, 0.03):
                await asyncio.sleep(5)
        await asyncio.sleep(0.01)  # the outer one did not fire
    assert len(d) == 0


async def test_deadline_and_asyncio_timeout_nest_either_way() -> None:
    d = for_loop(asyncio.get_running_loop())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(5.0):
            async with Deadline(d, 0.03):
                await asyncio.sleep(5)
    with pytest.raises(TimeoutError):
        async with Deadline(d, 5.0):
            async with asyncio.timeout(0.03):
                await asyncio.sleep(5)
    assert len(d) == 0
