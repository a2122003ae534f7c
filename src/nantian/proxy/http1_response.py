"""The HTTP/1.1 front end's response side: the response sink of one request, and the downstream of an upgrade."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from nantian.proxy._http1 import LAST_CHUNK, encode_chunk, encode_response_head, status_line, write_parts
from nantian.proxy.bodies import Tunnel
from nantian.proxy.exchange import Headers

if TYPE_CHECKING:
    from nantian.proxy.asyncio_http1 import Http1Server
    from nantian.proxy.bodies import StreamBody
    from nantian.proxy.exchange import Exchange

__all__ = ["Http1Response", "Http1Upgraded"]


_HEAD_ENDS: Final[dict[str, bytes]] = {
    chunked + connection: (chunked + connection + "\r\n").encode("latin-1")
    for chunked in ("", "transfer-encoding: chunked\r\n")
    for connection in ("", "connection: close\r\n", "connection: keep-alive\r\n")
}
"""Every framing ``_framing`` returns, encoded with the head's final empty line."""


class Http1Response:
    """The :class:`~nantian.proxy.exchange.ResponseSink` of one request on an HTTP/1.1 connection, and the
    connection's record of that request (its exchange and streaming request body) while it waits or runs."""

    __slots__ = (
        "_chunked",
        "_conn",
        "_head",
        "_method",
        "_no_body",
        "_te_trailers",
        "_version",
        "ended",
        "exchange",
        "keep_alive",
        "started",
        "stream_body",
    )

    def __init__(
        self,
        conn: Http1Server,
        method: str,
        version: str,
        te_trailers: bool,
        keep_alive: bool,
        stream_body: StreamBody | None = None,
    ) -> None:
        self._conn = conn
        self.exchange: Exchange | None = None
        """The request (set by the connection right after it made both, dropped when the response has ended: the
        two refer to each other, and the cycle must not outlive the request or only the garbage collector could
        free them)."""
        self.stream_body = stream_body
        """The request body when it streams (``None``: no body, or read whole before the request started)."""
        self.keep_alive = keep_alive
        self._method = method
        self._version = version
        self._te_trailers = te_trailers
        self._head: list[bytes] | None = None
        """The response head until it is written (with the first body bytes), in pieces joined once."""
        self._chunked = False
        self._no_body = False
        self.started = False
        self.ended = False

    async def start(self, status: int, headers: Headers) -> None:
        self.start_now(status, headers)

    def start_now(self, status: int, headers: Headers) -> None:
        """:meth:`start` without the coroutine (the callback fast path)."""
        has_length = False
        for k, _ in headers:
            if k == "content-length":
                has_length = True
                break
        self._start(status, has_length)
        self._head = [encode_response_head(status, headers, self._framing(status, has_length))]

    def start_raw(self, status: int, fields: bytes, has_length: bool) -> None:
        """Start with a header block already encoded (``name: value\r\n`` lines, end-to-end fields only)."""
        self._start(status, has_length)
        self._head = [status_line(status), fields, _HEAD_ENDS[self._framing(status, has_length)]]

    def _start(self, status: int, has_length: bool) -> None:
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self._no_body = self._method == "HEAD" or status < 200 or status in (204, 304)

    def _framing(self, status: int, has_length: bool) -> str:
        conn = self._conn
        no_body = self._no_body
        framing = ""
        if not has_length and not no_body:
            if self._version == "1.1":
                self._chunked = True
                framing = "transfer-encoding: chunked\r\n"
            else:
                self.keep_alive = False
        if not conn.keep_alive:
            self.keep_alive = False
        if not self.keep_alive:
            framing += "connection: close\r\n"
        elif self._version == "1.0":
            framing += "connection: keep-alive\r\n"
        return framing

    async def send(self, data: bytes) -> None:
        if not self.send_now(data):
            await self._conn.drained()

    def send_now(self, data: bytes) -> bool:
        """:meth:`send` without waiting: returns ``False`` when the client's write buffer is full (wait for
        :attr:`Http1Server.on_writable`)."""
        if not data or self._no_body:
            return True
        conn = self._conn
        transport = conn.transport
        if transport is None or conn.closed:
            raise ConnectionResetError("client went away")
        head = self._head
        if head is not None:
            self._head = None
            if self._chunked:
                head.extend(encode_chunk(data))
            else:
                head.append(data)
            write_parts(transport, head)
        elif self._chunked:
            write_parts(transport, encode_chunk(data))
        else:
            transport.write(data)
        return not conn.write_paused

    async def end(self, trailers: Headers | None = None) -> None:
        self.end_now(trailers)

    def end_now(self, trailers: Headers | None = None, now: float = -1.0) -> None:
        """:meth:`end` without the coroutine (``now``: the loop time, if the caller has it)."""
        if self.ended:
            return
        self.ended = True
        conn = self._conn
        transport = conn.transport
        if transport is not None and not conn.closed:
            parts = self._head
            self._head = None
            if parts is None:
                parts = []
            if self._chunked:
                if trailers and self._te_trailers:
                    fields = "".join(f"{k}: {v}\r\n" for k, v in trailers)
                    parts.append(b"0\r\n" + fields.encode("latin-1") + b"\r\n")
                else:
                    parts.append(LAST_CHUNK)
            if parts:
                write_parts(transport, parts)
        conn.response_ended(now)

    def on_drained(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the client's write buffer has drained."""
        self._conn.on_writable = callback

    def abort(self) -> None:
        self.ended = True
        self._conn.keep_alive = False
        self._conn.close()
        self._conn.response_ended()


class Http1Upgraded(Tunnel):
    """The downstream side of an upgraded connection as a :class:`~nantian.proxy.exchange.ByteStream`."""

    def __init__(self, conn: Http1Server, initial: bytes) -> None:
        super().__init__(conn.pause_reading, conn.resume_reading)
        self._conn = conn
        if initial:
            self.feed(initial)

    async def write(self, data: bytes) -> None:
        t = self._conn.transport
        if t is not None and not self._conn.closed:
            t.write(data)
            if self._conn.write_paused:
                await self._conn.drained()

    def write_eof(self) -> None:
        t = self._conn.transport
        if t is not None and not self._conn.closed and t.can_write_eof():
            t.write_eof()

    def close(self) -> None:
        self._conn.close()
