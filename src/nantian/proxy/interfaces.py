"""The interfaces a front end and the core implement for each other: request and response bodies, the response
sink, a raw byte stream, the per-listener handler. Re-exported by :mod:`nantian.proxy.exchange` (their documented
home). Never compiled (``nantian._native``): front-end and filter authors subclass these Protocols.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from nantian.proxy.messages import Exchange, Headers

__all__ = ["BodySource", "ByteStream", "ExchangeHandler", "ResponseSink"]


class BodySource(Protocol):
    """A request or response body, read in chunks. Reading applies flow control to the sender.

    ``content_length`` is the declared length (``None``: unknown, e.g. chunked or HTTP/2 without
    ``content-length``). ``read`` returns the next non-empty chunk, or ``b""`` once the body has ended (and
    then ``trailers`` holds the trailers, if the protocol carried any). ``read`` raises
    :class:`~nantian.errors.RemoteProtocolError` when the sender broke the body (reset stream, truncated chunked
    encoding, connection closed early).
    """

    content_length: int | None

    async def read(self) -> bytes:
        """The next chunk, ``b""`` at the end."""
        ...

    @property
    def trailers(self) -> Headers | None:
        """Trailer fields received after the body; ``None`` if none (or not at the end yet)."""
        ...


class ResponseSink(Protocol):
    """Where the core writes the downstream response. One response per exchange.

    Call order: ``start`` exactly once, ``send`` zero or more times, then ``end`` exactly once; or ``abort`` at
    any time, which gives up on the response (HTTP/1.1: closes the connection; HTTP/2: resets the stream).
    ``send`` awaits downstream flow control (write buffer high-water mark / HTTP/2 window), so a slow client
    slows the upstream read down instead of filling memory.

    The core passes end-to-end headers only (no hop-by-hop headers). The front end adds its own framing:
    HTTP/1.1 sets ``content-length`` or ``transfer-encoding: chunked`` and ``connection``; HTTP/2 maps
    ``status`` to ``:status``. If ``headers`` has a ``content-length``, the core sends exactly that many bytes.
    For a ``HEAD`` request or 1xx/204/304 the core sends no data.
    """

    @property
    def started(self) -> bool:
        """``start`` was called (so a local error answer is no longer possible; only ``abort``)."""
        ...

    async def start(self, status: int, headers: Headers) -> None:
        """Send the status line (``:status``) and headers."""
        ...

    async def send(self, data: bytes) -> None:
        """Send a chunk of the body; returns when the front end can take more."""
        ...

    async def end(self, trailers: Headers | None = None) -> None:
        """Finish the response, with trailers if given (HTTP/2, or chunked HTTP/1.1 when the client sent
        ``te: trailers``; otherwise dropped)."""
        ...

    def abort(self) -> None:
        """Give up on this response: the client sees a reset, not a complete response."""
        ...


class ByteStream(Protocol):
    """A raw bidirectional byte stream after a protocol upgrade (WebSocket over HTTP/1.1, CONNECT)."""

    async def read(self) -> bytes:
        """Next bytes, ``b""`` at EOF."""
        ...

    async def write(self, data: bytes) -> None:
        """Write and wait for flow control."""
        ...

    def write_eof(self) -> None:
        """Half-close our sending side."""
        ...

    def close(self) -> None:
        """Close both directions."""
        ...


class ExchangeHandler(Protocol):
    """What a compiled listener is to a front end: one coroutine per request."""

    async def handle(self, exchange: Exchange) -> None:
        """Route, filter, forward and answer ``exchange``. Returns when the response has ended or was aborted."""
        ...
