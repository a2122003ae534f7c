"""HTTP/1.1 for the echo server: httptools on an asyncio Protocol, with the WebSocket upgrade on ``/ws``."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import logging
from typing import cast

import httptools

from nantian.echo._answer import EchoRequest, Reply, Reset
from nantian.echo._site import Site, reset_transport
from nantian.echo._tls import tls_info
from nantian.echo._websocket import WebSocketEcho, accept_key
from nantian.errors import RemoteProtocolError

__all__ = ["Http1Connection"]

log = logging.getLogger(__name__)

_MAX_PIPELINE = 64
_MAX_HEAD = 64 * 1024
_LINGER = 0.5


class _HeadTooLarge(Exception):
    """The request line and headers exceed :data:`_MAX_HEAD` bytes."""


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


class _Parsed:
    """One request as httptools delivers it, before it becomes an :class:`EchoRequest`."""

    def __init__(self) -> None:
        self.url = bytearray()
        self.headers: list[tuple[str, str]] = []
        self.method = ""
        self.version = "1.1"
        self.keep_alive = True
        self.upgrade = False
        self.error: str | None = None
        self.status = 400
        self.head_size = 0

    def grow(self, size: int) -> None:
        self.head_size += size
        if self.head_size > _MAX_HEAD:
            raise _HeadTooLarge


class Http1Connection(asyncio.Protocol):
    """Serves one HTTP/1.1 connection: requests answered in order, keep-alive, ``/ws`` upgrades.

    With ``require_h2c`` every HTTP/1.1 request gets 400 "Expected h2c request" (upstream's h2c port).
    """

    def __init__(self, site: Site, *, require_h2c: bool = False) -> None:
        self._site = site
        self._require_h2c = require_h2c
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._current = _Parsed()
        self._queue: asyncio.Queue[_Parsed | None] = asyncio.Queue()  # None: the client sent EOF
        self._task: asyncio.Task[None] | None = None
        self._tail = bytearray()
        self._upgraded = False
        self._websocket: WebSocketEcho | None = None
        self._broken = False
        self._eof = asyncio.Event()

    # -- asyncio.Protocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop transports do not subclass asyncio's
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        if self._broken:
            return  # after a malformed request: discard until the lingering close ends
        if self._websocket is not None:
            self._websocket_data(data)
            return
        if self._upgraded:
            self._tail += data
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded = True
            self._tail += data[int(exc.args[0]) :]
        except httptools.HttpParserError as exc:
            bad = _Parsed()
            if isinstance(exc.__context__, _HeadTooLarge):
                bad.error, bad.status = f"request head larger than {_MAX_HEAD} bytes", 431
            else:
                bad.error = f"malformed request: {exc}"
            self._queue.put_nowait(bad)
            self._broken = True
        if self._queue.qsize() > _MAX_PIPELINE and self._transport is not None:
            self._transport.pause_reading()

    def eof_received(self) -> bool | None:
        self._eof.set()
        if self._websocket is not None:
            return None
        self._queue.put_nowait(None)
        if self._transport is not None and self._transport.get_extra_info("ssl_object") is not None:
            return None  # TLS cannot stay half-open (asyncio would only log a warning)
        return True  # keep the transport open: queued answers still go out after the client's FIN

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof.set()
        if self._task is not None:
            self._task.cancel()

    # -- httptools callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._current = _Parsed()

    def on_url(self, url: bytes) -> None:
        self._current.grow(len(url))
        self._current.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._current.grow(len(name) + len(value) + 4)
        self._current.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        current = self._current
        current.method = self._parser.get_method().decode("latin-1")
        current.version = self._parser.get_http_version()
        current.keep_alive = self._parser.should_keep_alive()
        current.upgrade = self._parser.should_upgrade()
        expects = [v.lower() for n, v in current.headers if n.lower() == "expect"]
        if "100-continue" in expects and current.version == "1.1" and self._transport is not None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_message_complete(self) -> None:
        self._queue.put_nowait(self._current)

    # -- serving -----------------------------------------------------------------------------------
    async def _serve(self) -> None:
        transport = self._transport
        assert transport is not None
        try:
            while not transport.is_closing():
                parsed = await self._queue.get()
                if parsed is None:
                    break
                if self._queue.qsize() <= _MAX_PIPELINE // 2 and not self._upgraded:
                    with contextlib.suppress(RuntimeError):
                        transport.resume_reading()
                if not await self._answer(parsed, transport):
                    break
            if self._broken and not transport.is_closing():
                await self._linger(transport)
        except OSError as exc:
            log.debug("echo.http1.connection_error error=%s", exc)
        finally:
            if self._websocket is None and not transport.is_closing():
                transport.close()

    async def _linger(self, transport: asyncio.Transport) -> None:
        """Half-close and discard input for a moment, so the error answer is not lost to a reset (as Go does)."""
        if transport.can_write_eof():
            transport.write_eof()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._eof.wait(), _LINGER)

    async def _answer(self, parsed: _Parsed, transport: asyncio.Transport) -> bool:
        """Answer one request; returns whether the connection stays open for more."""
        if parsed.error is not None:
            self._write(
                transport, Reply(status=parsed.status, body=parsed.error.encode()), keep_alive=False, head=False
            )
            return False
        request = self._request(parsed, transport)
        if self._require_h2c:
            self._write(transport, Reply(status=400, body=b"Expected h2c request"), keep_alive=True, head=False)
            return parsed.keep_alive and not parsed.upgrade
        if parsed.upgrade and request.target.split("?")[0] == "/ws" and self._start_websocket(request, transport):
            return False
        answer = self._site.echo.answer(request)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if isinstance(answer, Reset):
            reset_transport(transport)
            return False
        self._site.record(request, answer)
        keep_alive = parsed.keep_alive and not parsed.upgrade
        self._write(transport, answer, keep_alive=keep_alive, head=request.method == "HEAD")
        return keep_alive

    def _request(self, parsed: _Parsed, transport: asyncio.Transport) -> EchoRequest:
        host = next((value for name, value in parsed.headers if name.lower() == "host"), "")
        target = parsed.url.decode("latin-1")
        if "://" in target and not host:
            host = httptools.parse_url(bytes(parsed.url)).host.decode("latin-1")
        peer = transport.get_extra_info("peername")
        return EchoRequest(
            method=parsed.method,
            target=target,
            host=host,
            headers=tuple((name, value) for name, value in parsed.headers if name.lower() != "host"),
            proto=f"HTTP/{parsed.version}",
            tls=tls_info(transport.get_extra_info("ssl_object")),
            remote=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "",
        )

    @staticmethod
    def _write(transport: asyncio.Transport, reply: Reply, *, keep_alive: bool, head: bool) -> None:
        lines = [f"HTTP/1.1 {reply.status} {_reason(reply.status)}"]
        lines.extend(f"{name}: {value}" for name, value in reply.headers)
        lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
        bodyless = reply.status < 200 or reply.status in (204, 304)
        if not bodyless:
            if not any(name.lower() == "content-type" for name, _ in reply.headers):
                lines.append("Content-Type: text/plain; charset=utf-8")
            lines.append(f"Content-Length: {len(reply.body)}")
        if not keep_alive:
            lines.append("Connection: close")
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        transport.write(head_bytes if head or bodyless else head_bytes + reply.body)

    # -- WebSocket ---------------------------------------------------------------------------------
    def _start_websocket(self, request: EchoRequest, transport: asyncio.Transport) -> bool:
        upgrade = ",".join(request.header_values("Upgrade")).lower()
        keys = request.header_values("Sec-WebSocket-Key")
        if "websocket" not in upgrade or len(keys) != 1:
            return False
        transport.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept_key(keys[0])}\r\n\r\n"
            ).encode()
        )
        self._websocket = WebSocketEcho()
        self._site.record(request, Reply(status=101, echoed=True))
        with contextlib.suppress(RuntimeError):
            transport.resume_reading()
        tail, self._tail = bytes(self._tail), bytearray()
        if tail:
            self._websocket_data(tail)
        return True

    def _websocket_data(self, data: bytes) -> None:
        transport, websocket = self._transport, self._websocket
        assert transport is not None and websocket is not None
        try:
            frames = websocket.receive(data)
        except RemoteProtocolError as exc:
            log.debug("echo.websocket.protocol_error error=%s", exc)
            transport.close()
            return
        for frame in frames:
            transport.write(frame)
        if websocket.closed:
            transport.close()
