"""The HTTP/1.1 front end: httptools on an asyncio Protocol, turning requests into exchanges.

Keep-alive and pipelining: requests are parsed as they arrive, but handled one at a time in order (a pipelined
request's body is buffered until its turn; reading pauses when too much waits). Bodies stream both ways with flow
control: the request body pauses the transport above a high-water mark, the response waits for the transport's
write buffer to drain. Malformed requests get 400 (oversize URI 414, oversize head 431) and the connection closes.
Header-read and idle timeouts are enforced by the runtime's sweeper (:meth:`Http1Server.check_timeouts`), so the
hot path arms no timers.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Callable, MutableSet
from typing import Final, cast

import attrs
import httptools

from nantian.errors import RemoteProtocolError
from nantian.proxy._http1 import encode_response_head, status_line
from nantian.proxy.bodies import BytesBody, StreamBody
from nantian.proxy.deadlines import Deadlines, for_loop
from nantian.proxy.exchange import BodySource, ByteStream, EmptyBody, Exchange, Headers, ListenerRef, RequestHead
from nantian.proxy.fastpath import FastForward, try_fast
from nantian.proxy.http1_response import Http1Response, Http1Upgraded

__all__ = ["Http1Options", "Http1Server"]

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class Http1Options:
    """Limits of the HTTP/1.1 front end (seconds and bytes)."""

    max_uri: int = 8192
    max_head: int = 65536
    header_timeout: float = 30.0
    """From the first byte of a request head until the head is complete."""
    idle_timeout: float = 300.0
    """A keep-alive connection with no request in progress."""
    max_pipelined: int = 16
    buffer_body: int = 16384
    """Request bodies with a ``content-length`` up to this size are read whole before the request is routed (one
    write upstream, the fast path); larger and chunked ones stream."""


_EMPTY_BODY: Final = EmptyBody()
"""The body of every request without one (it holds no state)."""

LINGER = 2.0
"""Seconds a connection closed after an error answer keeps discarding input."""


class _State(enum.Enum):
    IDLE = 0
    HEAD = 1
    BUSY = 2


class _ParseError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Http1Server(asyncio.Protocol):
    """One downstream HTTP/1.1 connection.

    :param listener: The runtime's handle of the listener (``listener.current`` is read per request).
    :param scheme: ``http`` or ``https``.
    :param sni_section: HTTPS: the section the TLS handshake chose by SNI (for 421 detection).
    :param connections: The runtime's set of open connections (for drain, limits and timeouts).
    :param on_error: Called with the status of every request answered here because it was malformed.
    :param deadlines: Where the fast path keeps its timeouts (default: one shared per event loop).
    """

    def __init__(
        self,
        listener: ListenerRef,
        *,
        options: Http1Options | None = None,
        scheme: str = "http",
        sni_section: str | None = None,
        sni: str | None = None,
        connections: MutableSet[object] | None = None,
        on_error: Callable[[int], None] | None = None,
        deadlines: Deadlines | None = None,
    ) -> None:
        self.listener = listener
        self.options = options or Http1Options()
        # the limits read per request, as compiled attributes (options is an attrs instance: a lookup by name)
        self._max_head = self.options.max_head
        self._max_uri = self.options.max_uri
        self._buffer_body = self.options.buffer_body
        self._max_pipelined = self.options.max_pipelined
        self.scheme = scheme
        self.sni_section = sni_section
        self.sni = sni
        self._connections = connections
        self._on_error = on_error
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.closed = False
        self.keep_alive = True
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._deadlines = deadlines if deadlines is not None else for_loop(self._loop)
        # the request being parsed
        self._url = b""
        self._headers: Headers = []
        self._raw: list[bytes] = []
        self._head_size = 0
        self._fields_size = 0
        self._messages = 0
        self._in_head = False
        self._parsing_body: StreamBody | None = None
        self._buffering: Http1Response | None = None
        self._buffered: list[bytes] = []
        self._trailers: Headers | None = None
        # requests waiting or running, in order
        self._queue: deque[Http1Response] = deque()
        self._active: Http1Response | None = None
        self._task: asyncio.Task[None] | None = None
        self._tunnel: Http1Upgraded | None = None
        self._fast: FastForward | None = None
        self.on_writable: Callable[[], None] | None = None
        """Called once when the write buffer drains (the callback fast path's flow control)."""
        self._paused = False
        self._draining = False
        self._errored = False
        self.state = _State.IDLE
        self.state_since = 0.0
        self._now = 0.0

    # -- asyncio callbacks -------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods
        self.transport = cast(asyncio.Transport, transport)
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))
        self.state_since = self._loop.time()
        if self._connections is not None:
            self._connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel.feed(data)
            return
        if self.closed or self._errored:
            return
        self._now = now = self._loop.time()  # one clock read per chunk: the head's received_at too
        if self.state is _State.IDLE:
            self.state = _State.HEAD
            self.state_since = now
        was_in_head = self._in_head
        begun = self._messages
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = int(exc.args[0]) if exc.args else len(data)
            self._start_upgrade(data[offset:])
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _ParseError):
                self._protocol_error(cause.status, str(cause))
            else:
                self._protocol_error(400, str(exc))
            return
        if self._in_head and was_in_head and begun == self._messages:
            # the same head is still incomplete after this whole chunk (pipelined complete requests in a chunk
            # must not count against the next head)
            self._head_size += len(data)
            if self._head_size > self._max_head:
                self._protocol_error(431, "request head too large")

    def eof_received(self) -> bool | None:
        if self._tunnel is not None:
            self._tunnel.feed_eof()
            return True
        body = self._parsing_body
        if body is not None and not body.done:
            body.fail(RemoteProtocolError("client closed the connection in the request body"))
        self.keep_alive = False
        if self._active is None and not self._queue:
            self.close()
        # half-closed: finish the responses in progress, then close (TLS transports close on EOF whatever is returned,
        # and asyncio logs a warning for every connection that returns True there)
        return None if self.scheme == "https" else True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._fast is not None:
            fast, self._fast = self._fast, None
            fast.downstream_lost()
        if self._connections is not None:
            self._connections.discard(self)
        if self._tunnel is not None:
            self._tunnel.feed_eof()
        for cycle in (self._active, *self._queue):
            if cycle is not None and cycle.stream_body is not None and not cycle.stream_body.done:
                cycle.stream_body.fail(RemoteProtocolError("client went away"))
        if self._task is not None and not self._task.done():
            self._task.cancel()
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        writable = self.on_writable
        if writable is not None:
            self.on_writable = None
            writable()
        drain = self._drain
        if drain is not None:
            self._drain = None
            if not drain.done():
                drain.set_result(None)

    async def drained(self) -> None:
        """Wait until the transport's write buffer is below its low-water mark (or the connection is gone)."""
        if self.write_paused and not self.closed:
            if self._drain is None:
                self._drain = self._loop.create_future()
            await self._drain

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed and self._paused:
            self._paused = False
            self.transport.resume_reading()

    # -- parser callbacks --------------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._messages += 1
        self._url = b""
        self._headers = []
        self._raw = []
        self._head_size = 0
        self._fields_size = 0
        self._in_head = True
        self._trailers = None

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._max_uri:
            raise _ParseError(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:  # a trailer field of a chunked body
            if self._trailers is None:
                self._trailers = []
            self._trailers.append((name.decode("latin-1").lower(), value.decode("latin-1")))
            return
        self._fields_size += len(name) + len(value) + 4
        if self._fields_size > self._max_head:
            raise _ParseError(431, "request head too large")
        raw = self._raw  # the line as received, in pieces joined once per head (cheaper than formatting each line)
        raw.append(name)
        raw.append(b": ")
        raw.append(value)
        raw.append(b"\r\n")
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise _ParseError(505 if version.startswith("2") else 400, f"HTTP version {version} not served")
        method = parser.get_method().decode("latin-1")
        headers = self._headers
        authority: str | None = None
        length: int | None = None
        chunked = False
        upgrade = False
        expect = False
        te_trailers = False
        plain = True
        for k, v in headers:
            if k == "host":
                if authority is not None:
                    raise _ParseError(400, "more than one Host header")
                authority = v
            elif k == "content-length":
                length = int(v)
            elif k == "transfer-encoding":
                chunked = True
                plain = False
            elif k == "connection" or k == "upgrade" or k == "keep-alive" or k == "proxy-connection":
                plain = False
                if k == "upgrade":
                    upgrade = True
            elif k == "expect":
                expect = v.lower() == "100-continue"
                plain = False
            elif k == "te":
                te_trailers = "trailers" in v.lower()
                plain = False
        if authority is None:
            if version == "1.1":
                raise _ParseError(400, "missing Host header")
            authority = ""
        target = self._url.decode("latin-1")
        if not target.startswith("/"):
            target = self._origin_form(target)
        body: StreamBody | None = None
        source: BodySource
        small = not chunked and length is not None and 0 < length <= self._buffer_body and not expect and not upgrade
        if small:
            assert length is not None
            source = BytesBody.expecting(length)
        elif chunked or (length is not None and length > 0):
            body = StreamBody(None if chunked else length, self.pause_reading, self.resume_reading)
            source = body
        else:
            source = _EMPTY_BODY
        self._parsing_body = body
        response = Http1Response(
            self,
            method,
            version,
            te_trailers,
            parser.should_keep_alive() and not self._draining and self.keep_alive,
            body,
        )
        head = RequestHead(
            method=method,
            target=target,
            authority=authority,
            scheme=self.scheme,
            headers=headers,
            http_version=version,
            client=self.client,
            sni_section=self.sni_section,
            sni=self.sni,
            raw_headers=b"".join(self._raw) if plain and not upgrade else None,
        )
        exchange = Exchange(
            listener=self.listener.name,
            head=head,
            body=source,
            response=response,
            received_at=self._now,
            upgrade=self._accept_upgrade if upgrade else None,
        )
        if body is not None and expect:
            body.on_first_read(self._send_continue)
        response.exchange = exchange
        if small:
            # a small body is buffered whole; the request starts once it is in (and can take the fast path)
            self._buffering = response
            self._buffered = []
            return
        self._start_cycle(response)

    def _start_cycle(self, cycle: Http1Response) -> None:
        if self._active is None:
            self._run(cycle, self._now)
        else:
            self._queue.append(cycle)
            if len(self._queue) >= self._max_pipelined:
                self.pause_reading()

    def on_body(self, data: bytes) -> None:
        body = self._parsing_body
        if body is not None:
            body.feed(data)
        elif self._buffering is not None:
            self._buffered.append(data)

    def on_message_complete(self) -> None:
        body = self._parsing_body
        if body is not None:
            body.finish(self._trailers)
            self._parsing_body = None
        cycle = self._buffering
        if cycle is not None:
            self._buffering = None
            assert cycle.exchange is not None
            source = cycle.exchange.body
            assert isinstance(source, BytesBody)
            source.fill(b"".join(self._buffered))
            self._buffered = []
            self._start_cycle(cycle)

    @staticmethod
    def _origin_form(target: str) -> str:
        if target == "*":
            return target
        scheme_end = target.find("://")
        if scheme_end < 0:
            raise _ParseError(400, "invalid request target")
        slash = target.find("/", scheme_end + 3)
        return target[slash:] if slash >= 0 else "/"

    # -- request cycles ----------------------------------------------------------------------------------------
    def _run(self, cycle: Http1Response, now: float) -> None:
        """Serve ``cycle`` now (``now``: the loop time, read by the caller)."""
        self._active = cycle
        self.state = _State.BUSY
        ex = cycle.exchange
        assert ex is not None
        if cycle.stream_body is None and ex.upgrade is None:
            try:
                self._fast = try_fast(
                    self.listener.current, ex, cycle, self._fallback, self._loop, self._deadlines, now
                )
            except Exception:
                log.error("http1.fast_path_failed listener=%s", self.listener.name, exc_info=True)
                self._fast = None
                if cycle.started:
                    cycle.abort()
                    return
            if self._fast is not None:
                return
        self._task = self._loop.create_task(self._handle(cycle))

    def _fallback(self) -> None:
        """The fast path gave up before answering (a stale upstream connection): serve the request the slow way."""
        self._fast = None
        cycle = self._active
        if cycle is not None and not self.closed:
            self._task = self._loop.create_task(self._handle(cycle))

    async def _handle(self, cycle: Http1Response) -> None:
        try:
            ex = cycle.exchange
            assert ex is not None
            await self.listener.current.handle(ex)
        except asyncio.CancelledError:
            if not cycle.ended:
                cycle.abort()
            raise
        except Exception:
            log.error("http1.handler_failed listener=%s", self.listener.name, exc_info=True)
            if not cycle.ended:
                if cycle.started:
                    cycle.abort()
                else:
                    self.keep_alive = False
                    await cycle.start(500, [("content-length", "0")])
                    await cycle.end()
        if not cycle.ended:
            cycle.abort()

    def response_ended(self, now: float = -1.0) -> None:
        """Called by the response sink when the active response is complete (``now``: the loop time, if the caller
        has it)."""
        cycle = self._active
        if cycle is None:
            return
        self._active = None
        self._fast = None
        cycle.exchange = None  # the exchange refers back to its response: let reference counting free both
        body = cycle.stream_body
        if body is not None and not body.done:
            # the body was not read to its end: the rest of it cannot be told apart from the next request
            self.keep_alive = False
        if not cycle.keep_alive or not self.keep_alive or self.closed:
            self.keep_alive = False
            self._queue.clear()
            self.close()
            return
        if self._queue:
            nxt = self._queue.popleft()
            if self._paused and len(self._queue) < self._max_pipelined // 2:
                self.resume_reading()
            self._run(nxt, now if now >= 0.0 else self._loop.time())
        else:
            self.state = _State.HEAD if self._in_head else _State.IDLE
            self.state_since = now if now >= 0.0 else self._loop.time()

    def _send_continue(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    # -- upgrades ----------------------------------------------------------------------------------------------
    def _start_upgrade(self, rest: bytes) -> None:
        self._tunnel = Http1Upgraded(self, rest)
        self.keep_alive = False  # whatever happens, this connection no longer speaks HTTP/1.1 to us

    def _accept_upgrade(self, status: int, headers: Headers) -> ByteStream:
        assert self._tunnel is not None
        cycle = self._active
        if cycle is not None:
            cycle.started = True
            cycle.ended = True
        head = encode_response_head(status, headers, "")
        if self.transport is not None and not self.closed:
            self.transport.write(head)
        return self._tunnel

    # -- errors, timeouts, shutdown ----------------------------------------------------------------------------
    def _protocol_error(self, status: int, message: str) -> None:
        log.debug("http1.bad_request listener=%s status=%s reason=%s", self.listener.name, status, message)
        if self._on_error is not None:
            self._on_error(status)
        self._errored = True
        self.keep_alive = False
        body = self._parsing_body
        if body is not None and not body.done:
            body.fail(RemoteProtocolError(message))
        if self._active is None and self.transport is not None and not self.closed:
            payload = message.encode("latin-1", "replace")
            self.transport.write(
                status_line(status)
                + b"content-type: text/plain\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
                % (len(payload), payload)
            )
            self._lingering_close()
        else:
            self._queue.clear()
            self.pause_reading()

    def _lingering_close(self) -> None:
        """Close after an error answer without resetting: the peer may still be sending, and closing a socket with
        unread input sends RST, which can destroy the answer before the peer reads it. Half-close, discard what
        still comes, close for good after a grace period."""
        transport = self.transport
        if transport is None or self.closed:
            return
        if transport.can_write_eof():
            transport.write_eof()
            self._loop.call_later(LINGER, self.close)
        else:
            self.close()

    def check_timeouts(self, now: float) -> None:
        """Close the connection when a head has been read too slowly or it has been idle too long."""
        if self.closed or self._tunnel is not None:
            return
        if self.state is _State.HEAD and now - self.state_since > self.options.header_timeout:
            self._protocol_error(408, "request head not received in time")
        elif self.state is _State.IDLE and now - self.state_since > self.options.idle_timeout:
            self.close()

    def shutdown(self) -> None:
        """Drain: finish the request in progress (answered with ``connection: close``), then close."""
        self._draining = True
        self.keep_alive = False
        if self._active is None and self._tunnel is None:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Close now, dropping anything unsent."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
