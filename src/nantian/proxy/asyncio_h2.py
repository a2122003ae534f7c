"""The HTTP/2 front end: downstream h2 (ALPN ``h2`` on TLS, prior-knowledge h2c on cleartext) to exchanges.

Every request stream becomes an :class:`~nantian.proxy.exchange.Exchange` handed to
``listener.current.handle(exchange)`` in its own task. The request body is read with flow control (window given
back as the core consumes it), the response is written as the stream's window allows, trailers pass both ways,
a reset from the client cancels that stream's task, and :meth:`H2ServerProtocol.shutdown` drains with GOAWAY.
WebSocket over HTTP/2 (extended CONNECT, RFC 8441) becomes an HTTP/1.1 upgrade to the backend
(:mod:`nantian.proxy.websocket`); a gRPC request's non-gRPC error answer becomes a gRPC status
(:mod:`nantian.proxy.grpc`). Limits: concurrent streams, header list size, a send timeout for clients that never
open their window, a rapid-reset budget, an idle timeout (:class:`H2Options`). A malformed request is answered
400 or reset on its own stream (RFC 9113 section 8.1.1); the connection's other streams go on.

Wiring (for the runtime): wrap the HTTP/1.1 protocol factory with :func:`negotiating_factory`; it picks HTTP/2 by
ALPN on TLS listeners and by the connection preface on cleartext ones, and refuses TLS connections that lack a
required client certificate.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import typing
from collections.abc import Callable, MutableSet

import attrs
import h2.errors

from nantian.errors import RemoteProtocolError
from nantian.proxy import _h2, grpc, websocket
from nantian.proxy.asyncio_h2_connection import H2Protocol, H2Stream
from nantian.proxy.exchange import ByteStream, EmptyBody, Exchange, Headers, ListenerRef, RequestHead
from nantian.proxy.tls import ServerTls, TlsSession

__all__ = [
    "H2Options",
    "H2ResponseSink",
    "H2ServerProtocol",
    "H2Tunnel",
    "Http1Factory",
    "ProtocolSelector",
    "negotiating_factory",
    "serve_h2",
]

log = logging.getLogger(__name__)

Http1Factory = Callable[[TlsSession | None], asyncio.Protocol]
"""Makes the HTTP/1.1 protocol for one connection; gets the TLS session (``None`` on cleartext)."""


@attrs.frozen(kw_only=True)
class H2Options:
    """Limits of the downstream HTTP/2 front end."""

    max_concurrent_streams: int = 100
    initial_window_size: int = 1 << 20
    max_header_list_size: int = 65536
    idle_timeout: float = 300.0
    """Seconds without any open stream before the connection is closed with GOAWAY."""
    preface_timeout: float = 30.0
    """Cleartext: seconds a new connection may take to show whether it speaks HTTP/2 or HTTP/1.1."""
    send_timeout: float = 60.0
    """Seconds a response may wait for the client to open its flow-control window before the stream is reset."""
    enable_websocket: bool = True
    """Announce extended CONNECT and carry WebSocket over HTTP/2 streams (RFC 8441)."""
    max_resets_burst: int = 200
    max_resets_per_second: float = 100.0
    """Client resets of streams still being served, allowed in a burst and then per second; beyond, the connection
    gets GOAWAY ENHANCE_YOUR_CALM (the HTTP/2 "rapid reset" attack)."""


class H2ResponseSink:
    """The :class:`~nantian.proxy.exchange.ResponseSink` of one downstream stream.

    The response head goes out on the first ``send``, on ``end``, or with the connection's next write after
    ``start`` (at the end of the event-loop turn), whichever comes first: a response that ends right away (a gRPC
    *trailers-only* answer, an empty body) is then a single HEADERS frame with END_STREAM, which gRPC clients
    require.

    For a gRPC request, a non-gRPC answer with a status other than 200 (a local error, or an HTTP error page from
    the backend) becomes a trailers-only gRPC response (see :mod:`nantian.proxy.grpc`) and its body is dropped.
    """

    def __init__(self, protocol: H2ServerProtocol, stream: H2Stream, *, grpc_request: bool) -> None:
        self._protocol = protocol
        self._stream = stream
        self._grpc = grpc_request
        self._started = False
        self._ended = False
        self._head: list[tuple[bytes, bytes]] | None = None
        self.status: int | None = None

    @property
    def started(self) -> bool:
        return self._started

    @property
    def ended(self) -> bool:
        return self._ended

    async def start(self, status: int, headers: Headers) -> None:
        if self._started:
            return
        self._started = True
        self.status = status
        if self._stream.broken:
            return
        if self._grpc and status != 200 and not any(n == "grpc-status" for n, _ in headers):
            answer = [(b":status", b"200"), *_h2.outbound_headers(grpc.local_answer(status))]
            self._protocol.core.send_headers(self._stream.stream_id, answer, end_stream=True)
            self._protocol.flush()
            self._ended = True
            return
        head = _h2.outbound_headers(headers)
        head.insert(0, (b":status", _STATUS.get(status) or str(status).encode()))
        self._head = head
        self._protocol.defer_head(self)

    def send_head(self, *, end_stream: bool = False) -> None:
        """Send the head ``start`` kept back, if it is still waiting (the connection calls this before it writes)."""
        head = self._head
        if head is not None:
            self._head = None
            if not self._stream.broken:
                self._protocol.core.send_headers(self._stream.stream_id, head, end_stream=end_stream)
                self._protocol.flush()

    async def send(self, data: bytes) -> None:
        """Queue ``data`` and wait for the client's window.

        :raises TimeoutError: the client opened no window for ``H2Options.send_timeout`` seconds; the stream is
            reset (an ``OSError``, which the core treats like a broken connection).
        """
        if not self._ended and data:
            if self._head is not None:
                self.send_head()
            if not self._protocol.queue_data(self._stream, data):
                return  # the usual case: no window or buffer to wait for, no timer to arm
            try:
                async with asyncio.timeout(self._protocol.options.send_timeout):
                    await self._stream.wait_writable()
            except TimeoutError:
                log.debug("h2.send_timeout listener=%s stream=%d", self._protocol.listener.name, self._stream.stream_id)
                self.abort()
                raise

    async def end(self, trailers: Headers | None = None) -> None:
        if not self._started:
            await self.start(200, [])
        if self._ended:
            return
        self._ended = True
        if self._head is not None:
            if not trailers:
                self.send_head(end_stream=True)
                return
            self.send_head()
        self._protocol.end_stream(self._stream, trailers)

    def taken_over(self) -> None:
        """The stream became a tunnel (extended CONNECT): this sink writes nothing more."""
        self._started = self._ended = True

    def abort(self) -> None:
        if not self._ended:
            self._ended = True
            self._head = None
            self._protocol.reset_stream(self._stream, h2.errors.ErrorCodes.INTERNAL_ERROR)


class H2Tunnel:
    """One HTTP/2 stream as a :class:`~nantian.proxy.exchange.ByteStream` (the downstream side of a WebSocket
    over HTTP/2): DATA in, DATA out, END_STREAM as EOF; a reset stream reads as EOF and drops writes."""

    def __init__(self, protocol: H2ServerProtocol, stream: H2Stream) -> None:
        self._protocol = protocol
        self._stream = stream
        self._eof_sent = False

    async def read(self) -> bytes:
        try:
            return await self._stream.read()
        except RemoteProtocolError:
            return b""

    async def write(self, data: bytes) -> None:
        await self._protocol.send_data(self._stream, data)

    def write_eof(self) -> None:
        if not self._eof_sent:
            self._eof_sent = True
            self._protocol.end_stream(self._stream)

    def close(self) -> None:
        if not (self._eof_sent and self._stream.ended) and not self._stream.broken:
            self._protocol.reset_stream(self._stream)


_STATUS: dict[int, bytes] = {code: str(code).encode() for code in range(100, 600)}
"""``:status`` values, encoded once."""


class _Request(typing.NamedTuple):
    """What :func:`_request_head` read from a request's header list."""

    head: RequestHead
    protocol: str | None
    """The ``:protocol`` of an extended CONNECT."""
    content_length: int | None
    grpc: bool
    """``content-type`` says gRPC (:func:`nantian.proxy.grpc.is_grpc`)."""


def _request_head(headers: Headers, *, client: tuple[str, int] | None, tls: TlsSession | None) -> _Request:
    """The exchange's request head, and what the front end needs to know about it, from one pass over the fields
    (h2 validated them: pseudo-headers come first, names are lower case)."""
    method = target = authority = ""
    scheme = protocol = host = content_type = None
    content_length: int | None = None
    seen_length = False
    regular: Headers = []
    for field in headers:
        name = field[0]
        if name[0] == ":":
            if name == ":method":
                method = field[1]
            elif name == ":path":
                target = field[1]
            elif name == ":authority":
                authority = field[1]
            elif name == ":scheme":
                scheme = field[1]
            elif name == ":protocol":
                protocol = field[1]
        elif name == "host":
            host = field[1]
        else:
            if name == "content-length" and not seen_length:
                seen_length = True
                value = field[1]
                content_length = int(value) if value.isdigit() else None
            elif name == "content-type" and content_type is None:
                content_type = field[1]
            regular.append(field)
    authority = authority or host or ""
    if authority:
        # As an HTTP/1.1 request carries it: route header matches and filters on "host" see the authority.
        regular.insert(0, ("host", authority))
    head = RequestHead(
        method=method,
        target=target,
        authority=authority,
        scheme=scheme if scheme is not None else ("https" if tls is not None else "http"),
        headers=regular,
        http_version="2",
        client=client,
        sni_section=tls.section if tls is not None else None,
        sni=tls.server_name if tls is not None else None,
    )
    grpc_request = content_type is not None and grpc.is_grpc([("content-type", content_type)])
    return _Request(head, protocol, content_length, grpc_request)


def _refusal(head: RequestHead) -> tuple[int, bytes] | None:
    """A local answer for requests the core must not see: CONNECT (not an extended WebSocket one, which arrives
    here already translated), a ``:path`` that is not origin-form, no authority at all."""
    if head.method == "CONNECT":
        return 501, b"CONNECT is not supported\n"
    if not head.target.startswith("/") and not (head.method == "OPTIONS" and head.target == "*"):
        return 400, b"bad :path\n"
    if not head.authority:
        return 400, b"missing :authority and host\n"
    return None


class H2ServerProtocol(H2Protocol):
    """A downstream HTTP/2 connection serving ``listener``.

    :param listener: The runtime's handle; ``listener.current`` is read once per stream.
    :param tls: The TLS session (SNI section, SNI) on TLS listeners.
    :param connections: A set the runtime uses to find open connections for drain; this connection adds itself
        on ``connection_made`` and removes itself when lost. Members have :meth:`shutdown`.
    :param on_error: Called with 400 for every malformed request stream (answered 400, or reset when the body was
        the malformed part), like the HTTP/1.1 server's ``on_error`` (the runtime counts bad requests with it).
    """

    def __init__(
        self,
        listener: ListenerRef,
        *,
        tls: TlsSession | None = None,
        options: H2Options | None = None,
        connections: MutableSet[object] | None = None,
        on_error: Callable[[int], None] | None = None,
    ) -> None:
        opts = options or H2Options()
        super().__init__(
            _h2.H2Core(
                client_side=False,
                max_concurrent_streams=opts.max_concurrent_streams,
                initial_window_size=opts.initial_window_size,
                max_header_list_size=opts.max_header_list_size,
                enable_connect_protocol=opts.enable_websocket,
            )
        )
        self.listener = listener
        self.tls = tls
        self.options = opts
        self._connections = connections
        self._on_error = on_error
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._heads: list[H2ResponseSink] = []
        """Sinks whose response head waits for the next write (:meth:`H2ResponseSink.start`)."""
        self._loop = asyncio.get_running_loop()
        self._now = -1.0
        """The loop's time when the chunk being handled arrived (read once per chunk, on the first new stream)."""
        self._idle: asyncio.TimerHandle | None = None
        self._idle_since = 0.0
        self._client: tuple[str, int] | None = None
        self._reset_tokens = float(opts.max_resets_burst)
        self._reset_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._client = (str(peer[0]), int(peer[1]))
        if self._connections is not None:
            self._connections.add(self)
        self._arm_idle()
        log.debug("h2.connection_made listener=%s peer=%s", self.listener.name, self._client)

    def on_lost(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        if self._idle is not None:
            self._idle.cancel()
        if self._connections is not None:
            self._connections.discard(self)

    def shutdown(self) -> None:
        """Drain: send GOAWAY, finish the streams already open, then close. New streams are refused."""
        if self.lost:
            return
        self.core.goaway()
        self.flush()
        self._close_if_drained()

    def on_goaway(self, event: _h2.ConnectionEnded) -> None:
        self._close_if_drained()

    def data_received(self, data: bytes) -> None:
        self._now = -1.0
        super().data_received(data)

    def defer_head(self, sink: H2ResponseSink) -> None:
        """``sink`` has a response head to send with the connection's next write, unless it sends it first."""
        self._heads.append(sink)
        self.flush()

    def write_now(self) -> None:
        heads = self._heads
        if heads:
            self._heads = []
            for sink in heads:
                sink.send_head()
        super().write_now()

    def on_headers(self, event: _h2.HeadersReceived) -> None:
        sid = event.stream_id
        if sid in self.streams:
            return  # h2 reports trailers separately; a second head cannot happen
        if self.core.closed or len(self._tasks) >= self.core.max_inbound_streams:
            self.core.reset(sid, h2.errors.ErrorCodes.REFUSED_STREAM)  # draining, or over the advertised limit
            return
        head, protocol, content_length, grpc_request = _request_head(event.headers, client=self._client, tls=self.tls)
        stream = H2Stream(self, sid, content_length)
        if event.end_stream:
            stream.feed_end()
        self.streams[sid] = stream
        sink = H2ResponseSink(self, stream, grpc_request=grpc_request)
        now = self._now
        if now < 0:
            now = self._now = self._loop.time()
        exchange = Exchange(
            listener=self.listener.name,
            head=head,
            # HEADERS with END_STREAM: no body at all (not an empty chunked one) for the upstream to frame.
            body=EmptyBody() if event.end_stream else stream,
            response=sink,
            received_at=now,
        )
        if self.options.enable_websocket and websocket.is_extended_connect(head.method, protocol):
            # WebSocket over HTTP/2 (RFC 8441): the backend gets an HTTP/1.1 upgrade; the frames ride this stream.
            exchange.head = websocket.upgrade_request_from_connect(head)
            exchange.body = EmptyBody()
            exchange.upgrade = functools.partial(self._accept_tunnel, stream, sink)
        self._tasks[sid] = self._loop.create_task(self._serve(exchange, stream, sink))

    async def _serve(self, exchange: Exchange, stream: H2Stream, sink: H2ResponseSink) -> None:
        try:
            refusal = _refusal(exchange.head)
            if refusal is not None:
                status, text = refusal
                await sink.start(status, [("content-type", "text/plain"), ("content-length", str(len(text)))])
                await sink.send(text)
                await sink.end()
            else:
                await self.listener.current.handle(exchange)
            if not sink.ended:
                log.error("h2.response_not_ended listener=%s stream=%d", self.listener.name, stream.stream_id)
                sink.abort()
        except asyncio.CancelledError:
            if not sink.ended and not stream.broken:
                self.reset_stream(stream)
            raise
        except Exception:
            log.error("h2.handler_failed listener=%s stream=%d", self.listener.name, stream.stream_id, exc_info=True)
            sink.abort()
        finally:
            self._stream_done(stream)

    def _stream_done(self, stream: H2Stream) -> None:
        sid = stream.stream_id
        self._tasks.pop(sid, None)
        self.streams.pop(sid, None)
        if not stream.ended and not stream.broken:
            # We answered before the request body ended: tell the client to stop sending it.
            self.core.stop_peer_after_end(sid)
            self.flush()
        stream.discard()
        if not self._tasks:
            self._arm_idle()
            self._close_if_drained()

    def _close_if_drained(self) -> None:
        """After GOAWAY (either way): close once no stream is served and no response waits for window."""
        if self.core.closed and not self._tasks and not self.core.pending_output:
            self.close()

    def on_flushed(self) -> None:
        if self.core.closed:
            self._close_if_drained()

    def _accept_tunnel(self, stream: H2Stream, sink: H2ResponseSink, status: int, headers: Headers) -> ByteStream:
        """``Exchange.upgrade`` of an extended CONNECT: answer 200 and hand the stream over as a byte stream."""
        sink.taken_over()
        if not stream.broken:
            head = [(b":status", b"200"), *_h2.outbound_headers(websocket.connect_response_headers(headers))]
            self.core.send_headers(stream.stream_id, head)
            self.flush()
        return H2Tunnel(self, stream)

    def on_reset(self, stream: H2Stream) -> None:
        task = self._tasks.get(stream.stream_id)
        if task is None:
            return
        task.cancel()
        self._spend_reset_token()

    def on_stream_error(self, event: _h2.StreamError, stream: H2Stream | None) -> None:
        """A malformed request (or a frame that broke its stream): the core answered 400 or reset the stream; the
        exchange, if one started, is cancelled, and the connection's other streams go on."""
        log.debug(
            "h2.stream_error listener=%s peer=%s stream=%d code=%d answered=%s reason=%s",
            self.listener.name,
            self._client,
            event.stream_id,
            event.error_code,
            event.answered,
            event.reason,
        )
        if self._on_error is not None:
            self._on_error(event.answered or 400)
        task = self._tasks.get(event.stream_id)
        if task is not None:
            task.cancel()
        # Resets the client provokes with malformed frames count like its own ("MadeYouReset", CVE-2025-8671).
        self._spend_reset_token()

    def _spend_reset_token(self) -> None:
        """Spend a token of the reset budget. "Rapid reset" (CVE-2023-44487): streams opened and reset at once make
        work for nothing. A token bucket allows bursts and a steady rate of resets; a client beyond it is told to
        calm down and disconnected."""
        if self.closing:
            return
        now = self._loop.time()
        limit = self.options.max_resets_burst
        self._reset_tokens = min(
            limit, self._reset_tokens + (now - self._reset_at) * self.options.max_resets_per_second
        )
        self._reset_at = now
        self._reset_tokens -= 1
        if self._reset_tokens < 0:
            log.warning("h2.rapid_reset listener=%s peer=%s", self.listener.name, self._client)
            self.core.goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
            self.flush()
            self.close()

    def _arm_idle(self) -> None:
        """No stream is served from now on. One timer per connection, not one per idle spell: it stays armed while
        streams come and go and, when it fires early, is armed again for the rest of the current idle spell."""
        timeout = self.options.idle_timeout
        if timeout > 0 and not self.lost:
            self._idle_since = now = self._loop.time()
            if self._idle is None:
                self._idle = self._loop.call_at(now + timeout, self._idle_expired)

    def _idle_expired(self) -> None:
        self._idle = None
        if self._tasks or self.lost:
            return  # serving: _stream_done arms the timer again when the last stream ends
        rest = self._idle_since + self.options.idle_timeout - self._loop.time()
        if rest > 0:
            self._idle = self._loop.call_later(rest, self._idle_expired)
        else:
            log.debug("h2.idle_timeout listener=%s peer=%s", self.listener.name, self._client)
            self.shutdown()


def serve_h2(
    transport: asyncio.Transport,
    listener: ListenerRef,
    *,
    initial_data: bytes = b"",
    tls: TlsSession | None = None,
    options: H2Options | None = None,
    connections: MutableSet[object] | None = None,
    on_error: Callable[[int], None] | None = None,
) -> H2ServerProtocol:
    """Take over an accepted connection as HTTP/2: installs the protocol on ``transport`` and feeds it the bytes
    already read (``initial_data``, e.g. the connection preface a sniffing protocol consumed)."""
    protocol = H2ServerProtocol(listener, tls=tls, options=options, connections=connections, on_error=on_error)
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    if initial_data:
        protocol.data_received(initial_data)
    return protocol


class ProtocolSelector(asyncio.Protocol):
    """The first protocol of every accepted connection: picks HTTP/2 or HTTP/1.1, then steps aside.

    TLS (``server_tls`` set): asyncio calls ``connection_made`` after the handshake; the selector inspects the
    session, closes it if a required client certificate is missing, and picks HTTP/2 when ALPN chose ``h2``.
    Cleartext: it reads until the bytes either are the HTTP/2 preface (prior knowledge) or cannot be, then hands
    the connection and the bytes read so far to the chosen protocol.
    """

    def __init__(
        self,
        http1_factory: Http1Factory,
        listener: ListenerRef,
        *,
        server_tls: ServerTls | None = None,
        options: H2Options | None = None,
        connections: MutableSet[object] | None = None,
        on_error: Callable[[int], None] | None = None,
    ) -> None:
        self._http1_factory = http1_factory
        self._listener = listener
        self._server_tls = server_tls
        self._options = options
        self._connections = connections
        self._on_error = on_error
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._session: TlsSession | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport, so this is a cast, not a check.
        self._transport = tr = typing.cast(asyncio.Transport, transport)
        if self._server_tls is None:
            timeout = (self._options or H2Options()).preface_timeout
            self._timer = asyncio.get_running_loop().call_later(timeout, tr.abort)
            return
        session = self._server_tls.inspect(tr.get_extra_info("ssl_object"))
        if session.refused is not None:
            log.debug("tls.refused listener=%s reason=%s", self._listener.name, session.refused)
            tr.abort()
            return
        self._session = session
        if session.alpn == "h2":
            serve_h2(
                tr,
                self._listener,
                tls=session,
                options=self._options,
                connections=self._connections,
                on_error=self._on_error,
            )
        else:
            self._to_http1(b"")

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        n = min(len(self._buffer), len(_h2.PREFACE))
        if self._buffer[:n] != _h2.PREFACE[:n]:
            self._to_http1(self._buffer)
        elif n == len(_h2.PREFACE):
            assert self._transport is not None
            self._cancel_timer()
            serve_h2(
                self._transport,
                self._listener,
                initial_data=self._buffer,
                options=self._options,
                connections=self._connections,
                on_error=self._on_error,
            )

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _to_http1(self, initial: bytes) -> None:
        assert self._transport is not None
        self._cancel_timer()
        protocol = self._http1_factory(self._session)
        self._transport.set_protocol(protocol)
        protocol.connection_made(self._transport)
        if initial:
            protocol.data_received(initial)


def negotiating_factory(
    http1_factory: Http1Factory,
    listener: ListenerRef,
    *,
    server_tls: ServerTls | None = None,
    options: H2Options | None = None,
    connections: MutableSet[object] | None = None,
    on_error: Callable[[int], None] | None = None,
) -> Callable[[], asyncio.Protocol]:
    """The protocol factory for ``loop.create_server`` on an HTTP or HTTPS listener: HTTP/2 or HTTP/1.1 per
    connection (see :class:`ProtocolSelector`). On HTTPS pass ``ssl=server_tls.context`` to ``create_server``
    and the same ``server_tls`` here; ``http1_factory`` then receives the :class:`TlsSession` (``sni_section``
    for 421 detection). ``on_error`` is the HTTP/2 connections' (see :class:`H2ServerProtocol`)."""

    def factory() -> asyncio.Protocol:
        return ProtocolSelector(
            http1_factory, listener, server_tls=server_tls, options=options, connections=connections, on_error=on_error
        )

    return factory
