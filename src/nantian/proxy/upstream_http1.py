"""HTTP/1.1 upstream connections and the per-endpoint keep-alive pool (httptools on an asyncio Protocol)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from typing import Final, cast

import httptools

from nantian.errors import RemoteProtocolError
from nantian.ir import AppProtocol, Cluster, Endpoint
from nantian.proxy._http1 import (
    HOP_BY_HOP,
    LAST_CHUNK,
    decode_fields,
    encode_chunk,
    encode_request_head,
    write_parts,
)
from nantian.proxy.bodies import StreamBody, Tunnel
from nantian.proxy.exchange import (
    BodySource,
    ByteStream,
    EmptyBody,
    Headers,
    UpstreamError,
    UpstreamRequest,
    register_pool_factory,
)

__all__ = ["Http1Connection", "Http1Pool", "ResponseConsumer"]

log = logging.getLogger(__name__)

_HOP_BY_HOP_BYTES: Final = frozenset(name.encode() for name in HOP_BY_HOP)
# Final module constants: compiled code reads them as C values, not from the module dict per use
_PLAIN: Final = 0
_HOP: Final = 1
_CONNECTION: Final = 2
_TRANSFER_ENCODING: Final = 3
_CONTENT_LENGTH: Final = 4
_FIELD_KINDS: Final[dict[bytes, int]] = {}
"""Response field names as received (any case) -> what they are to the proxy; names repeat, lower() need not."""
_FIELD_KINDS_LIMIT: Final = 1024
_SPECIAL_LENGTHS: Final = frozenset({len(n) for n in _HOP_BY_HOP_BYTES} | {len(b"content-length")})
_MAYBE_SPECIAL: Final[list[bool]] = [n in _SPECIAL_LENGTHS for n in range(max(_SPECIAL_LENGTHS) + 1)]
"""By name length: whether a field of that length can be a hop-by-hop or framing field (most response fields are
told apart by their length alone, without hashing the name)."""


def _field_kind(name: bytes) -> int:
    """What a response field is to the proxy (``_PLAIN``, ``_HOP``, ...), by its name as received (any case)."""
    n = len(name)
    if n >= len(_MAYBE_SPECIAL) or not _MAYBE_SPECIAL[n]:
        return _PLAIN
    kind = _FIELD_KINDS.get(name)
    if kind is None:
        kind = _classify(name)
    return kind


def _classify(name: bytes) -> int:
    lower = name.lower()
    if lower == b"connection":
        kind = _CONNECTION
    elif lower == b"transfer-encoding":
        kind = _TRANSFER_ENCODING
    elif lower == b"content-length":
        kind = _CONTENT_LENGTH
    else:
        kind = _HOP if lower in _HOP_BY_HOP_BYTES else _PLAIN
    if len(_FIELD_KINDS) < _FIELD_KINDS_LIMIT:
        _FIELD_KINDS[name] = kind
    return kind


_PLAIN_CONNECTION: Final = frozenset({b"keep-alive", b"close"})

MAX_IDLE: Final = 1024
"""Idle keep-alive connections kept per endpoint (as many as concurrent requests needed, up to this)."""
STALE_IDLE = 1.0
"""A reused connection that was idle at least this long and closes before any response byte is taken for one the
upstream had already closed (a keep-alive race), and the request is sent again once. Shorter idle periods make the
failure the request's own (retries are the route's policy, counted exactly)."""
IDLE_TIMEOUT: Final = 60.0
"""Seconds an idle upstream connection is kept before it is closed instead of reused."""


class ResponseConsumer(abc.ABC):
    """Receives one upstream response, from the connection's parser callbacks (no task involved).

    The async path (:meth:`Http1Pool.request`) and the callback fast path (:mod:`nantian.proxy.fastpath`) both
    consume responses this way. Exactly one of ``on_error`` or ``on_end`` ends the response. A base class, not a
    Protocol: compiled subclasses get their methods called directly, not looked up by name per call.
    """

    __slots__ = ()

    @abc.abstractmethod
    def on_head(self, status: int, headers: Headers, content_length: int | None) -> None:
        """The response head (decoded end-to-end fields)."""

    @abc.abstractmethod
    def on_body(self, data: bytes) -> None:
        """A piece of the response body."""

    @abc.abstractmethod
    def on_end(self, trailers: Headers | None) -> None:
        """The response is complete (``trailers`` of a chunked body, if any)."""

    @abc.abstractmethod
    def on_error(self, error: UpstreamError) -> None:
        """The response failed (before or after its head)."""

    @abc.abstractmethod
    def on_raw_head(self, status: int, fields: bytes, content_length: int | None) -> None:
        """Only called when the request was started with ``raw=True``: the end-to-end header lines, undecoded."""


class _Response:
    """One upstream response: an :class:`~nantian.proxy.exchange.UpstreamResponse`."""

    __slots__ = ("_conn", "body", "headers", "status")

    def __init__(self, conn: Http1Connection, status: int, headers: Headers, body: StreamBody) -> None:
        self._conn = conn
        self.status = status
        self.headers = headers
        self.body: BodySource = body

    def abort(self) -> None:
        self._conn.abort_response()

    def detach(self) -> ByteStream:
        return self._conn.detach()


class _AsyncConsumer(ResponseConsumer):
    """Turns parser callbacks into a head future and a :class:`StreamBody`."""

    __slots__ = ("_body", "_conn", "head")

    def __init__(self, conn: Http1Connection, head: asyncio.Future[_Response]) -> None:
        self._conn = conn
        self.head = head
        self._body: StreamBody | None = None

    def on_head(self, status: int, headers: Headers, content_length: int | None) -> None:
        conn = self._conn
        self._body = body = StreamBody(content_length, conn.pause_reading, conn.resume_reading)
        if not self.head.done():
            self.head.set_result(_Response(conn, status, headers, body))

    def on_body(self, data: bytes) -> None:
        if self._body is not None:
            self._body.feed(data)

    def on_end(self, trailers: Headers | None) -> None:
        if self._body is not None:
            self._body.finish(trailers)

    def on_raw_head(self, status: int, fields: bytes, content_length: int | None) -> None:
        self.on_head(status, decode_fields(fields), content_length)

    def on_error(self, error: UpstreamError) -> None:
        if not self.head.done():
            self.head.set_exception(error)
        elif self._body is not None and not self._body.done:
            self._body.fail(RemoteProtocolError(str(error)))


class Http1Connection(asyncio.Protocol):
    """One upstream HTTP/1.1 connection: one request at a time, one parser for its lifetime."""

    def __init__(self, pool: Http1Pool, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self._consumer: ResponseConsumer | None = None
        self._headers: Headers = []
        self._raw_fields: list[bytes] = []
        """Raw mode: the response head's field names and values as received, alternating (reused)."""
        self._raw = False
        self._trailers: Headers | None = None
        self._in_head = False
        self._head_method = ""
        self._request_sent = True
        self._response_done = True
        self._received_any = False
        self._closed = False
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._tunnel: _Tunnel | None = None
        self._framed = True
        self.reused = False
        self.idle_since = 0.0
        self.idle_before = 0.0
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self.now = 0.0
        """The loop time when the last bytes arrived (callbacks of the response read it instead of the clock)."""

    # -- asyncio callbacks -------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel.feed(data)
            return
        self._received_any = True
        self.now = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = int(exc.args[0]) if exc.args else len(data)
            self._tunnel = _Tunnel(self)
            if offset < len(data):
                self._tunnel.feed(data[offset:])
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError("protocol", f"upstream sent invalid HTTP: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        if self._tunnel is not None:
            self._tunnel.feed_eof()
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.now = self._loop.time()
        self._pool._forget(self)
        if self._tunnel is not None:
            self._tunnel.feed_eof()
        consumer = self._consumer
        if consumer is not None and not self._response_done and not self._framed and not self._in_head:
            self._response_done = True  # a response delimited by the connection closing
            self._consumer = None
            consumer.on_end(None)
        self._fail(UpstreamError("reset", f"upstream connection closed: {exc or 'eof'}"))
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain = self._drain
        if drain is not None:
            self._drain = None
            if not drain.done():
                drain.set_result(None)

    # -- parser callbacks --------------------------------------------------------------------------------------
    # (no on_message_begin: one callback less per response; a response begins only after a request, and the
    # request's start resets the message state, see _expect_response)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_head:
            if self._raw:
                fields = self._raw_fields
                fields.append(name)
                fields.append(value)
            else:
                self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))
        else:
            if self._trailers is None:
                self._trailers = []
            self._trailers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._headers = []
            self._raw_fields.clear()
            return  # interim response: the final one follows
        self._in_head = False
        if self._raw and self._raw_head(status):
            return
        headers = self._headers
        length: int | None = None
        framed = False
        for k, v in headers:
            if k == "content-length":
                framed = True
                try:
                    length = int(v)
                except ValueError:
                    length = None
            elif k == "transfer-encoding":
                framed = True
        head_only = self._head_method == "HEAD"
        if head_only or status in (204, 304):
            framed = True
        self._framed = framed
        consumer = self._consumer
        if consumer is not None:
            consumer.on_head(status, headers, 0 if head_only or status in (204, 304) else length)
        if head_only and status != 101:
            # llhttp cannot be told to skip the body of a HEAD response; take the message as complete now.
            self.on_message_complete()
            self._parser = httptools.HttpResponseParser(self)

    def _raw_head(self, status: int) -> bool:
        """Hand the consumer the end-to-end header lines as bytes (no decoding). ``False``: a ``connection`` header
        names other fields, so the response takes the decoded way (the fields are decoded here for it)."""
        fields = self._raw_fields
        kept: list[bytes] = []
        length: int | None = None
        framed = False
        for i in range(0, len(fields), 2):
            name = fields[i]
            value = fields[i + 1]
            kind = _field_kind(name)
            if kind == _PLAIN:
                kept.append(name)  # (four appends: no tuple per field)
                kept.append(b": ")
                kept.append(value)
                kept.append(b"\r\n")
                continue
            if kind == _CONNECTION and value not in _PLAIN_CONNECTION and value.lower() not in _PLAIN_CONNECTION:
                self._headers = [
                    (fields[j].decode("latin-1").lower(), fields[j + 1].decode("latin-1"))
                    for j in range(0, len(fields), 2)
                ]
                return False
            if kind == _CONTENT_LENGTH:
                framed = True
                try:
                    length = int(value)
                except ValueError:
                    length = None
                kept += (name, b": ", value, b"\r\n")
            elif kind == _TRANSFER_ENCODING:
                framed = True
        head_only = self._head_method == "HEAD"
        if head_only or status in (204, 304):
            framed = True
        self._framed = framed
        consumer = self._consumer
        if consumer is not None:
            consumer.on_raw_head(status, b"".join(kept), 0 if head_only or status in (204, 304) else length)
        if head_only and status != 101:
            self.on_message_complete()
            self._parser = httptools.HttpResponseParser(self)
        return True

    def on_body(self, data: bytes) -> None:
        consumer = self._consumer
        if consumer is not None:
            consumer.on_body(data)

    def on_message_complete(self) -> None:
        consumer = self._consumer
        if consumer is None or self._in_head:
            return  # the end of an interim (1xx) response, or of a HEAD response already taken as complete
        self._response_done = True
        self._consumer = None
        keep = self._parser.should_keep_alive() if self._head_method != "HEAD" else True
        if keep and self._request_sent and not self._closed:
            self._pool._release(self, self.now)
        else:
            self.close()
        consumer.on_end(self._trailers)

    # -- flow control ------------------------------------------------------------------------------------------
    def pause_reading(self) -> None:
        """Stop reading the response (the client is not taking it fast enough)."""
        if self.transport is not None and not self._closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self._closed:
            self.transport.resume_reading()

    async def _drained(self) -> None:
        if self._write_paused and not self._closed:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain

    # -- requests ----------------------------------------------------------------------------------------------
    def _fail(self, error: UpstreamError) -> None:
        consumer = self._consumer
        if consumer is not None:
            self._consumer = None
            self._response_done = True
            consumer.on_error(error)

    @property
    def usable(self) -> bool:
        return not self._closed and self.transport is not None and not self.transport.is_closing()

    @property
    def maybe_stale(self) -> bool:
        """The request failed the way a keep-alive connection the upstream closed while idle fails (see
        ``STALE_IDLE``): resending it on a new connection is safe."""
        return self.reused and not self._received_any and self.idle_before >= STALE_IDLE

    @property
    def received_any(self) -> bool:
        """Bytes of the current response have arrived (a failure then is not a stale keep-alive connection)."""
        return self._received_any

    def _request_head(self, req: UpstreamRequest, length: int | None) -> list[bytes]:
        framing = f"connection: upgrade\r\nupgrade: {req.upgrade}\r\n" if req.upgrade is not None else ""
        if req.raw_headers is not None:
            if length is None:
                raise ValueError("raw_headers needs a body of known length")
            line = f"{req.method} {req.target} HTTP/1.1\r\n".encode("latin-1")
            return [line, req.raw_headers, req.extra_headers, framing.encode("latin-1"), b"\r\n"]
        if length is None:
            framing += "transfer-encoding: chunked\r\n"
        elif length or req.method in ("POST", "PUT", "PATCH"):
            framing += f"content-length: {length}\r\n"
        return [encode_request_head(req.method, req.target, req.authority, req.headers, framing)]

    def _expect_response(self) -> None:
        """The next bytes are a new response (what a parser's on_message_begin would reset)."""
        if self._raw:
            self._raw_fields.clear()
        else:
            self._headers = []
        self._trailers = None
        self._in_head = True

    def start(self, req: UpstreamRequest, consumer: ResponseConsumer, *, body: bytes = b"", raw: bool = False) -> None:
        """Send a request with a body held in memory (often none); the response goes to ``consumer`` (the callback
        fast path).

        ``raw``: the consumer takes the response head as encoded lines (:meth:`ResponseConsumer.on_raw_head`).
        """
        transport = self.transport
        assert transport is not None
        self._consumer = consumer
        self._raw = raw
        self._expect_response()
        self._head_method = req.method
        self._response_done = False
        self._received_any = False
        self._request_sent = True
        parts = self._request_head(req, len(body))
        if body:
            parts.append(body)
        write_parts(transport, parts)

    async def send(self, req: UpstreamRequest, body: BodySource) -> _Response:
        transport = self.transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        head: asyncio.Future[_Response] = loop.create_future()
        self._consumer = _AsyncConsumer(self, head)
        self._raw = False
        self._expect_response()
        self._head_method = req.method
        self._response_done = False
        self._received_any = False
        length = body.content_length
        first = self._request_head(req, length)
        if length == 0 or isinstance(body, EmptyBody):
            self._request_sent = True
            write_parts(transport, first)
        else:
            self._request_sent = False
            try:
                chunk = await body.read()
            except BaseException:
                self.close()  # nothing was written yet, but the connection is no longer in a known state
                raise
            if chunk and length is None:
                first.extend(encode_chunk(chunk))
            elif chunk:
                first.append(chunk)
            write_parts(transport, first)
            if chunk and length is not None and len(chunk) >= length:
                self._request_sent = True  # the whole body was in the first chunk (a buffered body)
            elif chunk:
                asyncio.get_running_loop().create_task(self._pump(body, length is None))
            else:
                if length is None:
                    transport.write(LAST_CHUNK)
                self._request_sent = True
        try:
            return await head
        except asyncio.CancelledError:
            self.close()
            raise

    async def _pump(self, body: BodySource, chunked: bool) -> None:
        transport = self.transport
        assert transport is not None
        try:
            while not self._closed:
                chunk = await body.read()
                if not chunk:
                    if chunked:
                        transport.write(LAST_CHUNK)
                    self._request_sent = True
                    if self._response_done and not self._closed:
                        # the response came first; the connection was held back until the request was sent
                        self.close()
                    return
                write_parts(transport, encode_chunk(chunk) if chunked else [chunk])
                await self._drained()
        except Exception as exc:  # the downstream body broke (client went away): this request is lost
            log.debug("upstream.body_failed error=%r", exc)
            self._fail(UpstreamError("reset", f"request body failed: {exc}"))
            self.close()

    def abort_response(self) -> None:
        if not self._response_done:
            self._consumer = None
            self.close()

    def detach(self) -> ByteStream:
        if self._tunnel is None:
            self._tunnel = _Tunnel(self)
        self._pool._forget(self)
        return self._tunnel

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool._forget(self)
            if self.transport is not None:
                self.transport.close()


class _Tunnel(Tunnel):
    """The upstream side of an upgraded connection as a :class:`~nantian.proxy.exchange.ByteStream`."""

    def __init__(self, conn: Http1Connection) -> None:
        super().__init__(conn.pause_reading, conn.resume_reading)
        self._conn = conn

    async def write(self, data: bytes) -> None:
        t = self._conn.transport
        if t is not None and not t.is_closing():
            t.write(data)
            await self._conn._drained()

    def write_eof(self) -> None:
        t = self._conn.transport
        if t is not None and not t.is_closing() and t.can_write_eof():
            t.write_eof()

    def close(self) -> None:
        self._conn.close()


class Http1Pool:
    """Keep-alive HTTP/1.1 connections to one endpoint (an :class:`~nantian.proxy.exchange.EndpointPool`).

    Idle connections are reused most-recently-used first; a reused connection that turns out closed before any
    response byte arrived is retried once on a fresh connection when the request has no body.
    """

    def __init__(
        self,
        address: str,
        port: int,
        *,
        connect_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        on_connect_error: Callable[[], None] | None = None,
        verify_peer: Callable[[ssl.SSLObject | None], None] | None = None,
    ) -> None:
        self.address = address
        self.port = port
        self.connect_timeout = connect_timeout
        self._ssl = ssl_context
        self._server_hostname = server_hostname
        self._idle: list[Http1Connection] = []  # a stack (most recently used last): list operations compile to C calls
        self._all: set[Http1Connection] = set()
        self._active = 0
        self._closed = False
        self.on_connect_error = on_connect_error
        self._verify_peer = verify_peer
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def active_requests(self) -> int:
        return self._active

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    def take_idle(self, now: float | None = None) -> Http1Connection | None:
        """A usable idle connection, if one is ready now (the callback fast path never waits for a connect).

        Most recently used first; connections idle longer than ``IDLE_TIMEOUT`` are closed on the way.
        """
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.usable:
                idle_for = (self._loop_time() if now is None else now) - conn.idle_since
                if idle_for > IDLE_TIMEOUT:
                    conn.close()
                    continue
                conn.idle_before = idle_for
                return conn
        return None

    def _loop_time(self) -> float:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()  # cached: each call costs a getpid() system call
        return loop.time()

    def _release(self, conn: Http1Connection, now: float = -1.0) -> None:
        """``conn`` is idle again (``now``: the loop time, if the caller has it)."""
        if self._closed or len(self._idle) >= MAX_IDLE:
            conn.close()
            return
        conn.reused = True
        conn.idle_since = now if now >= 0.0 else self._loop_time()
        self._idle.append(conn)

    def _forget(self, conn: Http1Connection) -> None:
        self._all.discard(conn)
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)

    async def _connect(self) -> Http1Connection:
        loop = asyncio.get_running_loop()
        conn = Http1Connection(self, loop)
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
            if self.on_connect_error is not None:
                self.on_connect_error()
            raise UpstreamError("connect", f"connect to {self.address}:{self.port} failed: {exc!r}") from exc
        self._all.add(conn)
        return conn

    async def request(self, req: UpstreamRequest, body: BodySource) -> _Response:
        self._active += 1
        try:
            while (conn := self.take_idle()) is not None:
                try:
                    return await conn.send(req, body)
                except UpstreamError as exc:
                    if exc.kind != "reset" or not conn.maybe_stale or not isinstance(body, EmptyBody):
                        raise
                    log.debug("upstream.stale_connection endpoint=%s:%s", self.address, self.port)
            conn = await self._connect()
            return await conn.send(req, body)
        finally:
            self._active -= 1

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()


def _factory(cluster: Cluster, endpoint: Endpoint, ctx: ssl.SSLContext | None) -> Http1Pool:
    return Http1Pool(
        endpoint.address,
        endpoint.port,
        connect_timeout=cluster.connect_timeout,
        ssl_context=ctx,
        server_hostname=cluster.tls.sni if cluster.tls is not None else None,
    )


register_pool_factory(AppProtocol.HTTP1, _factory)
register_pool_factory(AppProtocol.WEBSOCKET, _factory)
