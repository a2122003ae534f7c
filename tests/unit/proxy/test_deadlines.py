"""Coarse deadlines: one loop timer, buckets of RESOLUTION seconds, cancel by discarding."""

from __future__ import annotations

import asyncio

from nantian.proxy.deadlines import RESOLUTION, Deadlines


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
