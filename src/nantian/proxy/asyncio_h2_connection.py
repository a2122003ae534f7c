"""The asyncio side of an HTTP/2 connection, shared by the downstream front end and the h2c upstream pool.

:class:`H2Protocol` owns the transport and an :class:`~nantian.proxy._h2.H2Core`; :class:`H2Stream` is one
stream's inbound body (a :class:`~nantian.proxy.exchange.BodySource` whose reads give flow-control window back to
the peer) plus the wait for outbound window. Subclasses decide what a new head means (a request to serve, or the
response to a request we sent).
"""

from __future__ import annotations

import abc
import asyncio
import collections
import logging
import typing

import h2.errors

from nantian.errors import RemoteProtocolError
from nantian.proxy import _h2
from nantian.proxy.exchange import Headers

__all__ = ["SEND_BUFFER_LIMIT", "H2Protocol", "H2Stream"]

log = logging.getLogger(__name__)

SEND_BUFFER_LIMIT = 65536
"""Bytes a stream may have queued for window before ``send`` waits."""


class H2Stream:
    """One stream of an :class:`H2Protocol`: its inbound body and its outbound flow control.

    As a :class:`~nantian.proxy.exchange.BodySource`, ``read`` returns received DATA in order and acknowledges it
    to the peer (so an unread body stops the peer once its window is used), ``b""`` at END_STREAM, and raises
    :class:`~nantian.errors.RemoteProtocolError` when the stream was reset or the connection lost.
    """

    def __init__(self, protocol: H2Protocol, stream_id: int, content_length: int | None = None) -> None:
        self.protocol = protocol
        self.stream_id = stream_id
        self.content_length = content_length
        self._chunks: collections.deque[tuple[bytes, int]] = collections.deque()
        self._ended = False
        self._trailers: Headers | None = None
        self._error: Exception | None = None
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self.reset_code: int | None = None
        """Set when the stream was reset (by either side)."""

    # --- inbound ------------------------------------------------------------------------------------------------

    @property
    def trailers(self) -> Headers | None:
        return self._trailers

    @property
    def ended(self) -> bool:
        """END_STREAM was received (all of the body is queued or read)."""
        return self._ended

    async def read(self) -> bytes:
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._ended:
                return b""
            self._readable = asyncio.get_running_loop().create_future()
            try:
                await self._readable
            finally:
                self._readable = None
        data, flow = self._chunks.popleft()
        self.protocol.acknowledge(self.stream_id, flow)
        return data

    def feed(self, data: bytes, flow_length: int) -> None:
        if self._ended or self._error is not None:
            self.protocol.acknowledge(self.stream_id, flow_length)
            return
        self._chunks.append((data, flow_length))
        self._wake_reader()

    def feed_trailers(self, headers: Headers) -> None:
        self._trailers = headers

    def feed_end(self) -> None:
        self._ended = True
        self._wake_reader()

    def fail(self, error: Exception, reset_code: int | None = None) -> None:
        """The stream is gone: readers and writers get ``error``; unread data is given back to the connection."""
        if reset_code is not None and self.reset_code is None:
            self.reset_code = reset_code
        if self._ended:
            self.wake_writer()  # a complete body stays readable (e.g. RST_STREAM NO_ERROR after the response)
            return
        if self._error is None:
            self._error = error
        self.discard()
        self._wake_reader()
        self.wake_writer()

    def discard(self) -> None:
        """Drop unread body data, returning its window to the connection."""
        while self._chunks:
            _, flow = self._chunks.popleft()
            self.protocol.acknowledge(self.stream_id, flow)

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    # --- outbound -----------------------------------------------------------------------------------------------

    @property
    def broken(self) -> bool:
        """Writing is pointless: the stream was reset or the connection is gone."""
        return self.reset_code is not None or self.protocol.lost

    @property
    def must_wait(self) -> bool:
        """:meth:`wait_writable` would wait: too much output queued, or the transport paused writing."""
        protocol = self.protocol
        return (
            protocol.write_paused or protocol.core.buffered(self.stream_id) >= SEND_BUFFER_LIMIT
        ) and not self.broken

    async def wait_writable(self) -> None:
        """Return once this stream's queued output is under :data:`SEND_BUFFER_LIMIT` and the transport takes
        writes (or the stream broke)."""
        while self.must_wait:
            self._writable = asyncio.get_running_loop().create_future()
            self.protocol.writers.add(self)
            try:
                await self._writable
            finally:
                self._writable = None
                self.protocol.writers.discard(self)

    def wake_writer(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)


class H2Protocol(asyncio.Protocol, abc.ABC):
    """An HTTP/2 connection on an asyncio transport. Subclasses implement :meth:`on_headers` and may extend the
    other ``on_*`` hooks."""

    def __init__(self, core: _h2.H2Core) -> None:
        self.core = core
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.writers: set[H2Stream] = set()
        """Streams waiting in :meth:`H2Stream.wait_writable` (woken after every write)."""
        self.write_paused = False
        self.lost = False
        self._write_scheduled = False
        self.closing = False
        """:meth:`close` was called."""

    # --- asyncio.Protocol ---------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport, so this is a cast, not a check.
        self.transport = typing.cast(asyncio.Transport, transport)
        self.core.initiate()
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.core.receive(data)
        except RemoteProtocolError as exc:
            log.debug("h2.protocol_error peer=%s error=%s", self.peer, exc)
            self.flush()
            self.close()
            return
        for event in events:
            self.dispatch(event)
        if self.core.has_output or self.core.closed:  # a request head alone asks for no answer yet: no write turn
            self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        error = RemoteProtocolError("HTTP/2 connection lost")
        for stream in list(self.streams.values()):
            stream.fail(error, h2.errors.ErrorCodes.CANCEL)
        self.on_lost()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        for stream in list(self.writers):
            stream.wake_writer()

    # --- events -------------------------------------------------------------------------------------------------

    def dispatch(self, event: _h2.Event) -> None:
        match event:
            case _h2.HeadersReceived():
                self.on_headers(event)
            case _h2.DataReceived(stream_id, data, flow):
                stream = self.streams.get(stream_id)
                if stream is None:
                    self.acknowledge(stream_id, flow)
                else:
                    stream.feed(data, flow)
            case _h2.TrailersReceived(stream_id, headers):
                if (stream := self.streams.get(stream_id)) is not None:
                    stream.feed_trailers(headers)
            case _h2.StreamEnded(stream_id):
                if (stream := self.streams.get(stream_id)) is not None:
                    stream.feed_end()
            case _h2.StreamReset(stream_id, code):
                if (stream := self.streams.get(stream_id)) is not None:
                    stream.fail(RemoteProtocolError(f"HTTP/2 stream reset by peer (error {code})"), code)
                    self.on_reset(stream)
            case _h2.StreamError(stream_id, code, reason):
                stream = self.streams.get(stream_id)
                if stream is not None:
                    stream.fail(RemoteProtocolError(f"HTTP/2 stream error: {reason}"), code)
                self.on_stream_error(event, stream)
            case _h2.SendWindowOpened(stream_id):
                if (stream := self.streams.get(stream_id)) is not None:
                    stream.wake_writer()
            case _h2.ConnectionEnded():
                self.on_goaway(event)

    @abc.abstractmethod
    def on_headers(self, event: _h2.HeadersReceived) -> None:
        """A head arrived for ``event.stream_id``."""

    def on_reset(self, stream: H2Stream) -> None:
        """The peer reset ``stream`` (already failed)."""

    def on_stream_error(self, event: _h2.StreamError, stream: H2Stream | None) -> None:
        """The peer broke HTTP/2 on one stream; the core reset it (``stream``, if known here, is already failed)."""

    def on_goaway(self, event: _h2.ConnectionEnded) -> None:
        """The peer sent GOAWAY."""

    def on_lost(self) -> None:
        """The transport is closed; every stream has been failed."""

    # --- helpers ------------------------------------------------------------------------------------------------

    @property
    def peer(self) -> object:
        return self.transport.get_extra_info("peername") if self.transport is not None else None

    def flush(self) -> None:
        """Write what the core has queued, at the end of this event-loop turn: frames produced by every stream in
        one turn leave in one ``write`` (one system call instead of one per frame batch)."""
        if not self._write_scheduled and not self.lost:
            self._write_scheduled = True
            asyncio.get_running_loop().call_soon(self.write_now)

    def write_now(self) -> None:
        """Write what the core has queued, now; then let writers whose data went out queue more."""
        self._write_scheduled = False
        data = self.core.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        if self.writers:
            for stream in list(self.writers):
                stream.wake_writer()
        if not self.closing:
            self.on_flushed()

    def on_flushed(self) -> None:
        """Queued output was just written (the core may have no pending output left)."""

    def acknowledge(self, stream_id: int, flow_length: int) -> None:
        if not self.lost:
            self.core.acknowledge(stream_id, flow_length)
            self.flush()

    def reset_stream(self, stream: H2Stream, error_code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """Reset ``stream`` from our side; its reader gets an error."""
        if not self.lost:
            self.core.reset(stream.stream_id, error_code)
            self.flush()
        stream.fail(RemoteProtocolError("HTTP/2 stream reset"), error_code)

    async def send_data(self, stream: H2Stream, data: bytes) -> None:
        """Queue ``data`` on ``stream`` and wait for flow control. Dropped silently when the stream broke."""
        if self.queue_data(stream, data):
            await stream.wait_writable()

    def queue_data(self, stream: H2Stream, data: bytes) -> bool:
        """Queue ``data`` on ``stream`` (dropped when the stream broke); whether the sender must now wait in
        :meth:`H2Stream.wait_writable` before queueing more."""
        if stream.broken:
            return False
        self.core.send_data(stream.stream_id, data)
        self.flush()
        return stream.must_wait

    def end_stream(self, stream: H2Stream, trailers: Headers | None = None) -> None:
        """End our side of ``stream`` (after queued data), with trailers if any."""
        if stream.broken:
            return
        self.core.end_stream(stream.stream_id, _h2.outbound_headers(trailers) if trailers else None)
        self.flush()

    def abort(self) -> None:
        """Drop the connection now (the runtime's last resort after a drain timeout)."""
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Write what is queued (a GOAWAY, the last frames), then close the transport."""
        self.closing = True
        if self.transport is not None:
            self.write_now()
            self.transport.close()
