"""Relaying an upgraded connection (HTTP/1.1 ``101 Switching Protocols``): bytes both ways until both sides end."""

from __future__ import annotations

import asyncio
import logging

from nantian.proxy.exchange import ByteStream

__all__ = ["relay"]

log = logging.getLogger(__name__)


async def _pump(src: ByteStream, dst: ByteStream) -> int:
    total = 0
    while True:
        data = await src.read()
        if not data:
            dst.write_eof()
            return total
        total += len(data)
        await dst.write(data)


async def relay(downstream: ByteStream, upstream: ByteStream, idle_timeout: float | None = None) -> tuple[int, int]:
    """Copy bytes between the two streams (half-closes passed on); returns (bytes up, bytes down). Closes both."""
    try:
        results = await asyncio.gather(_pump(downstream, upstream), _pump(upstream, downstream), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                log.debug("tunnel.failed error=%r", r)
        up, down = (r if isinstance(r, int) else 0 for r in results)
        return up, down
    finally:
        downstream.close()
        upstream.close()
