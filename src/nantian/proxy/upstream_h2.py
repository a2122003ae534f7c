"""The HTTP/2 upstream pool: requests to ``AppProtocol.H2C`` clusters (gRPC backends) multiplexed as streams.

:class:`H2cPool` is an :class:`~nantian.proxy.exchange.EndpointPool`: one HTTP/2 connection per endpoint carries
every concurrent request (a second one opens only when the backend's SETTINGS_MAX_CONCURRENT_STREAMS is reached).
Request bodies stream with flow control while the response is awaited, response trailers (``grpc-status``) are
handed back through the body's ``trailers``, and failures before the response head raise
:class:`~nantian.proxy.exchange.UpstreamError` (``connect`` -> the core answers 503, ``reset``/``protocol`` ->
502; for gRPC requests the front end turns those into ``grpc-status`` answers). A malformed response fails its
own request only: the core resets that stream and the connection goes on carrying the others.

Importing this module registers the pool for ``AppProtocol.H2C`` (see :func:`register`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable

import h2.errors

from nantian.errors import RemoteProtocolError
from nantian.ir import AppProtocol, Cluster, Endpoint
from nantian.proxy import _h2
from nantian.proxy.asyncio_h2_connection import H2Protocol, H2Stream
from nantian.proxy.exchange import (
    BodySource,
    ByteStream,
    EmptyBody,
    Headers,
    UpstreamError,
    UpstreamRequest,
    register_pool_factory,
)
from nantian.proxy.tls_upstream import UpstreamTlsConfig

__all__ = ["H2UpstreamResponse", "H2cPool", "make_pool", "register"]

log = logging.getLogger(__name__)


class H2UpstreamResponse:
    """A response head from an h2 upstream; :attr:`body` streams the DATA and then holds the trailers."""

    def __init__(self, conn: _Connection, stream: H2Stream, status: int, headers: Headers) -> None:
        self._conn = conn
        self._stream = stream
        self.status = status
        self.headers = headers
        self.body: BodySource = stream
        for name, value in headers:
            if name == "content-length" and value.isdigit():
                stream.content_length = int(value)

    def abort(self) -> None:
        """Reset the stream (CANCEL) unless the response already ended; the connection stays up."""
        if not self._stream.ended and not self._stream.broken:
            self._conn.reset_stream(self._stream)
        self._stream.discard()
        self._conn.stream_done(self._stream)

    def detach(self) -> ByteStream:
        raise UpstreamError("protocol", "an HTTP/2 upstream cannot switch protocols")


class _Connection(H2Protocol):
    """One client HTTP/2 connection of an :class:`H2cPool`."""

    def __init__(self, pool: H2cPool) -> None:
        super().__init__(_h2.H2Core(client_side=True))
        self.pool = pool
        self._heads: dict[int, asyncio.Future[tuple[int, Headers]]] = {}
        self._pumps: dict[int, asyncio.Task[None]] = {}
        self.goaway_last_stream: int | None = None
        self._idle: asyncio.TimerHandle | None = None

    @property
    def usable(self) -> bool:
        # len(self.streams) counts our live streams; h2's open_outbound_streams walks every stream on each call.
        return (
            not self.lost
            and not self.closing
            and not self.core.closed
            and len(self.streams) < self.core.max_outbound_streams
        )

    def on_headers(self, event: _h2.HeadersReceived) -> None:
        head = self._heads.pop(event.stream_id, None)
        stream = self.streams.get(event.stream_id)
        if stream is not None and event.end_stream:
            stream.feed_end()
        if head is None or head.done():
            return
        status_text = next((v for n, v in event.headers if n == ":status"), "")
        if not status_text.isdigit():
            head.set_exception(UpstreamError("protocol", f"invalid :status {status_text!r} from upstream"))
            return
        headers = [(n, v) for n, v in event.headers if not n.startswith(":")]
        head.set_result((int(status_text), headers))

    def dispatch(self, event: _h2.Event) -> None:
        super().dispatch(event)
        if isinstance(event, _h2.StreamEnded | _h2.StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None and stream.ended and event.stream_id not in self._pumps:
                self.stream_done(stream)

    def on_reset(self, stream: H2Stream) -> None:
        self._fail_head(stream.stream_id, UpstreamError("reset", f"upstream reset stream (error {stream.reset_code})"))
        pump = self._pumps.pop(stream.stream_id, None)
        if pump is not None:
            pump.cancel()
        self.stream_done(stream)

    def on_stream_error(self, event: _h2.StreamError, stream: H2Stream | None) -> None:
        """A malformed response (or body) on one stream: that request fails (502 before the head, a cut body
        after it); the connection's other requests go on."""
        log.debug(
            "upstream_h2.stream_error endpoint=%s stream=%d reason=%s",
            self.pool.endpoint,
            event.stream_id,
            event.reason,
        )
        self._fail_head(event.stream_id, UpstreamError("protocol", f"malformed response from upstream: {event.reason}"))
        pump = self._pumps.pop(event.stream_id, None)
        if pump is not None:
            pump.cancel()
        if stream is not None:
            self.stream_done(stream)

    def on_goaway(self, event: _h2.ConnectionEnded) -> None:
        self.goaway_last_stream = event.last_stream_id
        log.debug(
            "upstream_h2.goaway endpoint=%s code=%d last=%d", self.pool.endpoint, event.error_code, event.last_stream_id
        )
        for sid, stream in list(self.streams.items()):
            if sid > event.last_stream_id:  # never processed: safe to retry elsewhere
                self._fail_head(sid, UpstreamError("reset", "upstream refused the stream (GOAWAY)"))
                stream.fail(RemoteProtocolError("upstream went away"), h2.errors.ErrorCodes.REFUSED_STREAM)
                self.stream_done(stream)
        self._close_if_idle()

    def on_lost(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        for sid in list(self._heads):
            self._fail_head(sid, UpstreamError("reset", "upstream connection closed before the response head"))
        for pump in self._pumps.values():
            pump.cancel()
        self._pumps.clear()
        self.streams.clear()
        self.pool.forget(self)

    def _fail_head(self, stream_id: int, error: UpstreamError) -> None:
        head = self._heads.pop(stream_id, None)
        if head is not None and not head.done():
            head.set_exception(error)

    def stream_done(self, stream: H2Stream) -> None:
        """Forget ``stream`` (its response ended or was given up); close the connection if it is retired.

        Unread response data stays readable; reading it still gives connection window back."""
        self.streams.pop(stream.stream_id, None)
        self._close_if_idle()

    def _close_if_idle(self) -> None:
        if self.streams or self.lost:
            return
        if self.core.closed or self.pool.closed:
            self.close()
        elif self._idle is None and self.pool.idle_timeout > 0:
            self._idle = asyncio.get_running_loop().call_later(self.pool.idle_timeout, self._idle_expired)

    def _idle_expired(self) -> None:
        self._idle = None
        if not self.streams:
            log.debug("upstream_h2.idle_close endpoint=%s", self.pool.endpoint)
            self.pool.forget(self)
            self.close()

    async def send(self, req: UpstreamRequest, body: BodySource, scheme: str) -> H2UpstreamResponse:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        sid = self.core.next_stream_id()
        stream = H2Stream(self, sid)
        self.streams[sid] = stream
        head: asyncio.Future[tuple[int, Headers]] = asyncio.get_running_loop().create_future()
        self._heads[sid] = head
        no_body = isinstance(body, EmptyBody) or body.content_length == 0
        pseudo = [
            (b":method", req.method.encode("latin-1")),
            (b":scheme", scheme.encode()),
            (b":authority", req.authority.encode("latin-1")),
            (b":path", (req.target or "/").encode("latin-1")),
        ]
        try:
            self.core.send_headers(sid, pseudo + _h2.outbound_headers(req.headers), end_stream=no_body)
        except Exception as exc:  # h2 refuses headers it considers invalid: a malformed request, not a crash
            self.streams.pop(sid, None)
            self._heads.pop(sid, None)
            raise UpstreamError("protocol", f"request cannot be sent over HTTP/2: {exc}") from exc
        self.flush()
        if not no_body:
            self._pumps[sid] = asyncio.get_running_loop().create_task(self._pump(stream, body))
        try:
            status, headers = await head
        except BaseException:
            if not stream.broken:
                self.reset_stream(stream)
            pump = self._pumps.pop(sid, None)
            if pump is not None:
                pump.cancel()
            self.stream_done(stream)
            raise
        return H2UpstreamResponse(self, stream, status, headers)

    async def _pump(self, stream: H2Stream, body: BodySource) -> None:
        try:
            while chunk := await body.read():
                await self.send_data(stream, chunk)
            self.end_stream(stream, body.trailers)
        except (RemoteProtocolError, OSError) as exc:
            # The downstream broke its request body: the upstream must not take a truncated request as complete.
            log.debug("upstream_h2.request_body_failed endpoint=%s error=%r", self.pool.endpoint, exc)
            if not stream.broken:
                self.reset_stream(stream)
        finally:
            self._pumps.pop(stream.stream_id, None)
            if stream.ended and stream.stream_id in self.streams and stream.stream_id not in self._heads:
                self.stream_done(stream)


class H2cPool:
    """HTTP/2 connections to one endpoint (an :class:`~nantian.proxy.exchange.EndpointPool`).

    :param verify_peer: Called with the ``ssl_object`` after a TLS handshake (subjectAltName checks); raising
        fails the connect.
    :param idle_timeout: A connection without streams for this many seconds is closed.
    """

    def __init__(
        self,
        address: str,
        port: int,
        *,
        connect_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        verify_peer: Callable[[ssl.SSLObject | None], None] | None = None,
        idle_timeout: float = 60.0,
    ) -> None:
        self.address = address
        self.idle_timeout = idle_timeout
        """Seconds a connection without streams stays open (0: forever)."""
        self.port = port
        self.connect_timeout = connect_timeout
        self._ssl = ssl_context
        self._server_hostname = server_hostname
        self._verify_peer = verify_peer
        self._scheme = "https" if ssl_context is not None else "http"
        self._connections: list[_Connection] = []
        self._connecting: asyncio.Task[_Connection] | None = None
        self._active = 0
        self.closed = False

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def active_requests(self) -> int:
        return self._active

    @property
    def connections(self) -> int:
        """Open connections (for tests and metrics)."""
        return len(self._connections)

    def forget(self, conn: _Connection) -> None:
        with contextlib.suppress(ValueError):
            self._connections.remove(conn)

    async def _connect(self) -> _Connection:
        conn = _Connection(self)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                await loop.create_connection(
                    lambda: conn,
                    self.address,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname if self._ssl is not None else None,
                )
            if self._verify_peer is not None and conn.transport is not None:
                self._verify_peer(conn.transport.get_extra_info("ssl_object"))
        except (OSError, TimeoutError, ssl.SSLError, ssl.CertificateError) as exc:
            conn.close()
            raise UpstreamError("connect", f"connect to {self.endpoint} failed: {exc!r}") from exc
        if self._ssl is not None and conn.transport is not None:
            ssl_object = conn.transport.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.selected_alpn_protocol() not in (None, "h2"):
                conn.close()
                raise UpstreamError("connect", f"{self.endpoint} does not speak HTTP/2 over TLS (ALPN)")
        self._connections.append(conn)
        log.debug("upstream_h2.connected endpoint=%s", self.endpoint)
        return conn

    async def _connection(self) -> _Connection:
        for conn in self._connections:
            if conn.usable:
                return conn
        connecting = self._connecting
        if connecting is None:
            connecting = self._connecting = asyncio.get_running_loop().create_task(self._connect())
            connecting.add_done_callback(self._connect_done)
        return await asyncio.shield(connecting)

    def _connect_done(self, fut: asyncio.Future[_Connection]) -> None:
        self._connecting = None
        if not fut.cancelled():
            fut.exception()  # mark retrieved: every waiter got it through the shield

    async def request(self, req: UpstreamRequest, body: BodySource) -> H2UpstreamResponse:
        """Send ``req`` on a multiplexed stream; returns at the response head.

        A stream the backend refused by GOAWAY (never processed) is retried once on a new connection when the
        request has no body to replay.

        :raises UpstreamError: connect failure, reset or GOAWAY before the head, or an invalid response head.
        """
        if self.closed:
            raise UpstreamError("connect", f"pool for {self.endpoint} is closed")
        self._active += 1
        try:
            for attempt in (1, 2):
                conn = await self._connection()
                try:
                    return await conn.send(req, body, self._scheme)
                except UpstreamError as exc:
                    refused = conn.goaway_last_stream is not None
                    if attempt == 2 or exc.kind != "reset" or not refused or not isinstance(body, EmptyBody):
                        raise
            raise AssertionError("unreachable")
        finally:
            self._active -= 1

    def close(self) -> None:
        """Retire the pool: idle connections close now, busy ones once their streams end."""
        self.closed = True
        for conn in list(self._connections):
            if not conn.streams:
                conn.close()


def make_pool(cluster: Cluster, endpoint: Endpoint, ssl_context: ssl.SSLContext | None) -> H2cPool:
    """The :data:`~nantian.proxy.exchange.PoolFactory` for ``AppProtocol.H2C`` clusters.

    With upstream TLS the context is switched to offer ALPN ``h2`` (it is built per cluster), and the cluster's
    ``subject_alt_names`` are checked after the handshake.
    """
    verify: Callable[[ssl.SSLObject | None], None] | None = None
    server_hostname = None
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(["h2"])
        if cluster.tls is not None:
            server_hostname = cluster.tls.sni
            if cluster.tls.subject_alt_names:
                config = UpstreamTlsConfig(
                    context=ssl_context,
                    server_hostname=cluster.tls.sni,
                    subject_alt_names=cluster.tls.subject_alt_names,
                )
                verify = config.verify_peer
    return H2cPool(
        endpoint.address,
        endpoint.port,
        connect_timeout=cluster.connect_timeout,
        ssl_context=ssl_context,
        server_hostname=server_hostname,
        verify_peer=verify,
    )


def register() -> None:
    """Register :func:`make_pool` for ``AppProtocol.H2C`` (done on import; idempotent)."""
    register_pool_factory(AppProtocol.H2C, make_pool)


register()
