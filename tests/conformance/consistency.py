"""How long the runner waits and how often it retries: :class:`Timing` and :func:`eventually`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import attrs


@attrs.frozen(kw_only=True)
class Timing:
    """Bounds of every wait (upstream allows 30-180 s; CI cannot)."""

    sync: float = 20.0
    status: float = 20.0
    traffic: float = 10.0
    stream: float = 10.0
    mirror: float = 10.0
    interval: float = 0.1
    consecutive: int = 3
    samples: int = 500
    sample_attempts: int = 3
    in_flight: int = 10

    def scaled(self, factor: float) -> Timing:
        return attrs.evolve(
            self,
            sync=self.sync * factor,
            status=self.status * factor,
            traffic=self.traffic * factor,
            stream=self.stream * factor,
            mirror=self.mirror * factor,
            sample_attempts=1 if factor < 1 else self.sample_attempts,
        )


async def eventually(
    attempt: Callable[[], Awaitable[list[str]]],
    *,
    needed: int,
    timeout: float,  # noqa: ASYNC109 (a deadline for the whole loop, not one await)
    interval: float,
    fatal: Callable[[list[str]], bool] | None = None,
) -> list[str]:
    """Repeat ``attempt`` until it passes ``needed`` times in a row; the last failures if time runs out."""
    deadline = time.monotonic() + timeout
    streak, last = 0, ["never attempted"]
    while True:
        failures = await attempt()
        if not failures:
            streak += 1
            if streak >= needed:
                return []
            continue
        if fatal is not None and fatal(failures):
            return failures
        streak, last = 0, failures
        if time.monotonic() > deadline:
            return [f"not met within {timeout:.0f} s: {line}" for line in last]
        await asyncio.sleep(interval)
