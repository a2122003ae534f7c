"""What every HTTP connection of one listener shares: the identity's :class:`Echo`, the listener kind, the log."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

import attrs

from nantian.echo._answer import Echo, EchoRequest, Reply
from nantian.echo._requestlog import RequestLog

__all__ = ["Site", "reset_transport"]


@attrs.frozen(kw_only=True)
class Site:
    """One HTTP listener of one identity."""

    echo: Echo
    kind: str
    """``http``, ``h2c`` or ``https``."""
    log: RequestLog | None = None

    def record(self, request: EchoRequest, reply: Reply) -> None:
        """Log ``request`` when ``reply`` echoes it."""
        if self.log is not None and reply.echoed:
            self.log.add(
                self.echo.context, method=request.method, path=request.target, host=request.host, protocol=self.kind
            )


def reset_transport(transport: asyncio.WriteTransport) -> None:
    """Close ``transport`` with a TCP RST (SO_LINGER 0) instead of a FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
