"""asyncio adapter of the stream relay: two transports, one :class:`~nantian.proxy._relay.Relay`, no decisions.

:class:`RelayConnection` is the downstream :class:`asyncio.Protocol` a stream listener's server creates per
connection. It feeds the relay core what the transports report and executes the core's commands: writes,
half-closes, pause/resume reading (flow control both ways), the idle timer and the final close. Which backend to
connect to is decided elsewhere: ``on_ready`` is called once the downstream is accepted and after every chunk it
sends while no upstream is chosen; it calls :meth:`RelayConnection.connect` or :meth:`RelayConnection.stop`, or
:meth:`RelayConnection.terminate` to run a TLS handshake over the bytes read so far
(:class:`~nantian.proxy.stream_tls.TlsTermination`) and relay the plaintext.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import typing
from collections.abc import Callable

from nantian.errors import RemoteProtocolError
from nantian.proxy._relay import (
    Close,
    Command,
    Connected,
    ConnectFailed,
    ConnectionLost,
    DataReceived,
    EofReceived,
    Event,
    PauseReading,
    Relay,
    ResumeReading,
    Send,
    ShutdownWrite,
    Side,
    StartTimer,
    Stop,
    TimerFired,
    WriteBlocked,
    WriteUnblocked,
)
from nantian.proxy.stream_tls import TlsTermination

__all__ = ["RelayConnection"]

log = logging.getLogger(__name__)


class _Upstream(asyncio.Protocol):
    """The upstream side of one relayed connection: passes transport callbacks to its :class:`RelayConnection`."""

    def __init__(self, conn: RelayConnection) -> None:
        self._conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._conn._transports[Side.UPSTREAM] = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._conn.feed(DataReceived(Side.UPSTREAM, data))

    def eof_received(self) -> bool:
        self._conn.feed(EofReceived(Side.UPSTREAM))
        return True  # keep the transport open for writing: the relay decides when to close

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn.feed(ConnectionLost(Side.UPSTREAM, str(exc) if exc is not None else None))

    def pause_writing(self) -> None:
        self._conn.feed(WriteBlocked(Side.UPSTREAM))

    def resume_writing(self) -> None:
        self._conn.feed(WriteUnblocked(Side.UPSTREAM))


class RelayConnection(asyncio.Protocol):
    """One relayed connection, created per accepted downstream connection.

    :param on_ready: Called with this connection when the downstream is accepted and after each chunk it sends
        until :meth:`connect` or :meth:`stop` is called; it reads :attr:`relay` (``pending`` bytes) to decide.
    :param on_done: Called once when the connection is closed (for the access log, metrics, bookkeeping).
    :param idle_timeout: Seconds without bytes in either direction before closing; ``None``: never.
    :param half_close_downstream: Whether EOF can be passed on to the downstream (``False`` for TLS).
    :param decide_timeout: Seconds after accepting within which ``on_ready`` must pick an upstream (a TLS
        passthrough client must have sent its ClientHello); ``None``: no limit.
    """

    def __init__(
        self,
        *,
        on_ready: Callable[[RelayConnection], None],
        on_done: Callable[[RelayConnection], None],
        idle_timeout: float | None = None,
        half_close_downstream: bool = True,
        decide_timeout: float | None = None,
    ) -> None:
        half = frozenset(Side) if half_close_downstream else frozenset({Side.UPSTREAM})
        self.relay = Relay(idle_timeout=idle_timeout, half_close=half)
        self._on_ready: Callable[[RelayConnection], None] | None = on_ready
        self._on_done = on_done
        self._transports: dict[Side, asyncio.Transport] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._decide_timeout = decide_timeout
        self._decide_timer: asyncio.TimerHandle | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._tls: TlsTermination | None = None
        self._on_handshake: Callable[[RelayConnection], None] | None = None
        self._tls_write_closed = False
        self.started_at = 0.0
        self.ended_at = 0.0
        self.client: tuple[str, int] | None = None
        """The downstream peer address."""
        self.upstream: str | None = None
        """``address:port`` of the upstream once :meth:`connect` was called."""
        self.info: dict[str, str] = {}
        """Free-form facts for the access log (route, backend cluster, SNI), filled by whoever routes."""

    # -- downstream protocol callbacks -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast: uvloop's transports do not subclass asyncio.Transport
        self._transports[Side.DOWNSTREAM] = typing.cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()
        self.started_at = self._loop.time()
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))
        self._execute(self.relay.start())
        self._ready()
        if self._on_ready is not None and self._decide_timeout is not None and not self.relay.closed:
            self._decide_timer = self._loop.call_later(self._decide_timeout, self._undecided)

    def data_received(self, data: bytes) -> None:
        if self._tls is not None:
            self._tls_received(data)
            return
        self.feed(DataReceived(Side.DOWNSTREAM, data))
        if self._on_ready is not None and not self.relay.closed:
            self._ready()

    def eof_received(self) -> bool:
        if self._on_ready is not None or (self._tls is not None and not self._tls.handshake_done):
            self.stop("downstream closed before an upstream was chosen")  # e.g. within its ClientHello
            return True
        self.feed(EofReceived(Side.DOWNSTREAM))
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.feed(ConnectionLost(Side.DOWNSTREAM, str(exc) if exc is not None else None))

    def pause_writing(self) -> None:
        self.feed(WriteBlocked(Side.DOWNSTREAM))

    def resume_writing(self) -> None:
        self.feed(WriteUnblocked(Side.DOWNSTREAM))

    # -- control -------------------------------------------------------------------------------------------------
    @property
    def downstream(self) -> asyncio.Transport | None:
        """The downstream transport (for ``get_extra_info``), once accepted."""
        return self._transports.get(Side.DOWNSTREAM)

    @property
    def tls(self) -> TlsTermination | None:
        """The TLS session with the downstream, once :meth:`terminate` was called."""
        return self._tls

    def terminate(self, context: ssl.SSLContext, *, on_handshake: Callable[[RelayConnection], None]) -> None:
        """Run a TLS handshake with the downstream over the bytes it sent so far, then relay plaintext.

        ``on_handshake`` is called once the handshake is done; it calls :meth:`connect` (or :meth:`stop`).
        """
        if self._tls is not None or self.relay.closed:
            return
        self._on_ready = None
        self._tls = TlsTermination(context)
        self._on_handshake = on_handshake
        raw, commands = self.relay.take_pending()
        self._execute(commands)
        self._tls_received(raw)

    def connect(self, host: str, port: int, *, timeout: float) -> None:
        """Open the upstream connection; bytes flow once it is established. Call at most once."""
        if self._connecting is not None or self.relay.closed or self._loop is None:
            return
        self._on_ready = None
        self._cancel_decide_timer()
        self.upstream = f"{host}:{port}"
        self._connecting = self._loop.create_task(self._connect(host, port, timeout))

    def stop(self, reason: str) -> None:
        """Close both sides now, dropping unsent bytes (no route, shutdown)."""
        self._on_ready = None
        self.feed(Stop(reason))

    def shutdown(self) -> None:
        """Close both sides after what is already buffered for them (the runtime's drain, a removed listener).

        A byte stream has no request boundary to wait for, so this closes now rather than at the drain deadline.
        """
        self._on_ready = None
        self.feed(Stop("shut down", abort=False))

    def abort(self) -> None:
        """Close now (the runtime's hard close)."""
        self.stop("closed by the proxy")

    def feed(self, event: Event) -> None:
        """Pass one event to the relay core and execute its commands."""
        self._execute(self.relay.handle(event))

    # -- internals -----------------------------------------------------------------------------------------------
    def _tls_received(self, data: bytes) -> None:
        tls = self._tls
        transport = self._transports.get(Side.DOWNSTREAM)
        if tls is None or transport is None or self.relay.closed:
            return
        try:
            got = tls.receive(data)
        except RemoteProtocolError as exc:
            self.stop(str(exc))
            return
        if got.to_send and not transport.is_closing():
            transport.write(got.to_send)
        if got.handshake_completed and self._on_handshake is not None:
            callback, self._on_handshake = self._on_handshake, None
            try:
                callback(self)
            except Exception:
                log.error("stream.routing_failed client=%s", self.client, exc_info=True)
                self.stop("routing failed")
        if got.plaintext:
            self.feed(DataReceived(Side.DOWNSTREAM, got.plaintext))
        if got.eof:
            self.feed(EofReceived(Side.DOWNSTREAM))

    def _ready(self) -> None:
        if self._on_ready is None:
            return
        try:
            self._on_ready(self)
        except Exception:
            log.error("stream.routing_failed client=%s", self.client, exc_info=True)
            self.stop("routing failed")

    async def _connect(self, host: str, port: int, connect_timeout: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                transport, _ = await loop.create_connection(lambda: _Upstream(self), host, port)
        except (OSError, TimeoutError, ValueError) as exc:  # ValueError: a host name IDNA cannot encode
            self.feed(ConnectFailed(str(exc) or type(exc).__name__))
            return
        if self.relay.closed:
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.feed(Connected())

    def _undecided(self) -> None:
        self._decide_timer = None
        if self._on_ready is not None:
            self.stop(f"no upstream chosen within {self._decide_timeout} s")

    def _cancel_decide_timer(self) -> None:
        if self._decide_timer is not None:
            self._decide_timer.cancel()
            self._decide_timer = None

    def _fire(self) -> None:
        self._timer = None
        self.feed(TimerFired())

    def _execute(self, commands: list[Command]) -> None:
        for command in commands:
            match command:
                case Send(side, data):
                    transport = self._transports.get(side)
                    if transport is not None and not transport.is_closing():
                        if side is Side.DOWNSTREAM and self._tls is not None:
                            data = self._tls.send(data)
                        transport.write(data)
                case ShutdownWrite(side):
                    transport = self._transports.get(side)
                    if transport is not None and not transport.is_closing():
                        if side is Side.DOWNSTREAM and self._tls is not None:
                            self._tls_write_closed = True
                            transport.write(self._tls.close_write())  # a TLS half-close: close_notify
                        elif transport.can_write_eof():
                            transport.write_eof()
                        else:
                            transport.close()
                case PauseReading(side):
                    transport = self._transports.get(side)
                    if transport is not None and transport.is_reading():
                        transport.pause_reading()
                case ResumeReading(side):
                    transport = self._transports.get(side)
                    if transport is not None and not transport.is_closing() and not transport.is_reading():
                        transport.resume_reading()
                case StartTimer(delay):
                    if self._timer is not None:
                        self._timer.cancel()
                    assert self._loop is not None
                    self._timer = self._loop.call_later(delay, self._fire)
                case Close(reason, abort):
                    self._close(reason, abort=abort)

    def _close(self, reason: str, *, abort: bool) -> None:
        self._cancel_decide_timer()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        tls, down = self._tls, self._transports.get(Side.DOWNSTREAM)
        if tls is not None and down is not None and not abort and not self._tls_write_closed:
            self._tls_write_closed = True
            if not down.is_closing():
                down.write(tls.close_write())
        for transport in self._transports.values():
            if abort:
                transport.abort()
            else:
                transport.close()
        self.ended_at = self._loop.time() if self._loop is not None else 0.0
        log.debug("stream.closed client=%s upstream=%s reason=%s", self.client, self.upstream, reason)
        try:
            self._on_done(self)
        except Exception:
            log.error("stream.on_done_failed client=%s", self.client, exc_info=True)
