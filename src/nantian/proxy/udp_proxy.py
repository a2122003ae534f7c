"""The UDP listener of the stream proxy (UDPRoute): a datagram endpoint with one upstream socket per client.

A datagram from a client without a session picks the listener's route and a backend endpoint (as for TCP, see
:mod:`nantian.proxy.stream_config`) and opens a connected datagram socket to it; replies arriving there go back to
that client from the listener's address. Sessions expire when idle and are bounded in number
(:class:`~nantian.proxy.udp_sessions.UdpSessionTable`); datagrams without a route or beyond the bound are dropped
and counted. A config swap changes the routes of new sessions only.
"""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Callable
from typing import Any

import attrs

from nantian.proxy.stream_config import StreamListenerRef, StreamTarget
from nantian.proxy.stream_metrics import StreamAccessLog, StreamMetrics
from nantian.proxy.udp_sessions import UdpSessionTable

__all__ = ["UdpOptions", "UdpProxy"]

log = logging.getLogger(__name__)

Address = tuple[Any, ...]


@attrs.frozen(kw_only=True)
class UdpOptions:
    """UDP proxying limits.

    :param session_timeout: Seconds a session lives after its last datagram either way.
    :param max_sessions: Sessions per listener; datagrams from further clients are dropped.
    :param max_pending: Datagrams kept per session while its upstream socket opens; more are dropped.
    """

    session_timeout: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    max_sessions: int = attrs.field(default=4096, validator=attrs.validators.ge(1))
    max_pending: int = attrs.field(default=64, validator=attrs.validators.ge(1))


class _Session(asyncio.DatagramProtocol):
    """One client's session: a connected datagram socket to the chosen endpoint."""

    def __init__(self, proxy: UdpProxy, client: Address, target: StreamTarget, route: str, started: float) -> None:
        self.proxy = proxy
        self.client = client
        self.target = target
        self.route = route
        self.started = started
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []
        self.opening: asyncio.Task[None] | None = None
        self.closed = False
        self.datagrams_in = self.datagrams_out = self.bytes_in = self.bytes_out = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast: asyncio's selector datagram transport does not subclass DatagramTransport
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.datagrams_out += 1
        self.bytes_out += len(data)
        self.proxy._reply(self, data)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp.upstream_error client=%s upstream=%s error=%s", self.client, self.upstream, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    @property
    def upstream(self) -> str:
        return f"{self.target.address}:{self.target.port}"

    def send(self, data: bytes) -> bool:
        self.datagrams_in += 1
        self.bytes_in += len(data)
        if self.transport is not None:
            self.transport.sendto(data)
            return True
        if len(self.pending) >= self.proxy.options.max_pending:
            return False
        self.pending.append(data)
        return True

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.target.connect_timeout):
                await loop.create_datagram_endpoint(lambda: self, remote_addr=(self.target.address, self.target.port))
        except (OSError, TimeoutError) as exc:
            log.debug("udp.upstream_open_failed client=%s upstream=%s error=%s", self.client, self.upstream, exc)
            self.proxy._end(self, "upstream_error")
            return
        if self.closed:
            self.close()
            return
        assert self.transport is not None
        for data in self.pending:
            self.transport.sendto(data)
        self.pending.clear()

    def close(self) -> None:
        self.closed = True
        if self.opening is not None and not self.opening.done():
            self.opening.cancel()
        if self.transport is not None:
            self.transport.close()
        self.pending.clear()


class UdpProxy(asyncio.DatagramProtocol):
    """The datagram protocol of one UDP listener. Use with ``loop.create_datagram_endpoint(sock=...)``.

    :param ref: The listener's current compiled config (read once per new session).
    :param access: Where the access line of each ended session goes (default: the ``nantian.access`` logger).
    """

    def __init__(
        self,
        ref: StreamListenerRef,
        *,
        metrics: StreamMetrics,
        options: UdpOptions | None = None,
        access: StreamAccessLog | None = None,
    ) -> None:
        self.ref = ref
        self.options = options or UdpOptions()
        self._metrics = metrics
        self._access = access if access is not None else StreamAccessLog()
        self.sessions: UdpSessionTable[Address, _Session] = UdpSessionTable(
            max_sessions=self.options.max_sessions, idle_timeout=self.options.session_timeout
        )
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._untrack: Callable[[], None] | None = None

    def __len__(self) -> int:
        """Live sessions."""
        return len(self.sessions)

    # -- downstream ----------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = typing.cast(asyncio.DatagramTransport, transport)
        self._loop = asyncio.get_running_loop()
        self._untrack = self._metrics.track_sessions(self.ref.name, self.sessions.__len__)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if self._closed or self._loop is None:
            return
        now = self._loop.time()
        session = self.sessions.touch(addr, now)
        if session is None:
            session = self._open(addr, now)
            if session is None:
                return
        if not session.send(data):
            self._metrics.udp_drop(self.ref.name, "backlog")

    def error_received(self, exc: Exception) -> None:
        log.debug("udp.downstream_error listener=%s error=%s", self.ref.name, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    # -- sessions ------------------------------------------------------------------------------------------------
    def _open(self, client: Address, now: float) -> _Session | None:
        config = self.ref.current
        backends = config.select()
        target = backends.pick() if backends is not None else "no route"
        if isinstance(target, str):
            log.debug("udp.dropped listener=%s client=%s reason=%s", self.ref.name, client, target)
            self._metrics.udp_drop(self.ref.name, "no_route")
            return None
        assert backends is not None
        session = _Session(self, client, target, backends.route.name, now)
        if not self.sessions.add(client, session, now):
            self._metrics.udp_drop(self.ref.name, "sessions_full")
            return None
        assert self._loop is not None
        session.opening = self._loop.create_task(session.open())
        self._arm()
        return session

    def _reply(self, session: _Session, data: bytes) -> None:
        if session.closed or self._transport is None or self._loop is None:
            return
        self.sessions.touch(session.client, self._loop.time())
        self._transport.sendto(data, session.client)

    def _end(self, session: _Session, result: str) -> None:
        if session.closed:
            return
        if self.sessions.get(session.client) is session:
            self.sessions.remove(session.client)
        self._finish(session, result)

    def _finish(self, session: _Session, result: str) -> None:
        """Count and log an ended session; ``result`` is ``idle_timeout``, ``listener_closed`` or ``upstream_error``."""
        session.close()
        self._metrics.udp_session(
            self.ref.name,
            session.route,
            datagrams_in=session.datagrams_in,
            datagrams_out=session.datagrams_out,
            failed=result == "upstream_error",
        )
        if self._access.active:
            ended = self._loop.time() if self._loop is not None else session.started
            self._access.udp_session(
                listener=self.ref.name,
                route=session.route,
                backend=session.target.cluster,
                client=str(session.client[0]) if session.client else "-",
                duration=ended - session.started,
                bytes_in=session.bytes_in,
                bytes_out=session.bytes_out,
                result=result,
                upstream=session.upstream,
                datagrams_in=session.datagrams_in,
                datagrams_out=session.datagrams_out,
            )

    def _arm(self) -> None:
        if self._timer is not None or self._loop is None:
            return
        expiry = self.sessions.next_expiry()
        if expiry is None:
            return
        # at least every quarter timeout, so an expiry is late by at most that much
        delay = min(max(expiry - self._loop.time(), 0.0), self.options.session_timeout / 4) + 0.001
        self._timer = self._loop.call_later(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._loop is None:
            return
        for _, session in self.sessions.expire(self._loop.time()):
            self._finish(session, "idle_timeout")
        self._arm()

    def close(self) -> None:
        """Stop: close the listening socket and every session."""
        if self._closed:
            return
        self._closed = True
        if self._untrack is not None:
            self._untrack()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for _, session in self.sessions.clear():
            self._finish(session, "listener_closed")
        if self._transport is not None:
            self._transport.close()
