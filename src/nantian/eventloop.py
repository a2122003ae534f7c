"""The apps' event loop: uvloop when it is installed (measured here: 15-28% less CPU per proxied request).

The library itself runs on any asyncio loop; only the apps (``nantian ...`` commands) choose.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["run_app", "stop_on_signals"]


def run_app(coro: Coroutine[Any, Any, int]) -> int:
    """Run an app's main coroutine to completion and return its exit code."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(stop: asyncio.Event) -> Callable[[], None]:
    """Set ``stop`` on SIGTERM/SIGINT; returns the function that removes the handlers again.

    Where the running loop cannot take signal handlers (Windows event loops, a loop outside the main thread, as in
    tests that run an app in a thread), nothing is installed and the caller relies on ``stop`` alone.
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if sys.platform != "win32":
        for sig in _STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, stop.set)
            except (RuntimeError, ValueError):
                break
            installed.append(sig)

    def remove() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return remove
