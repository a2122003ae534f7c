"""The seam between protocol front ends and the routing/forwarding core.

A *front end* (HTTP/1.1 in :mod:`nantian.proxy.asyncio_http1`, HTTP/2 in the TLS/HTTP/2 engineer's modules)
parses requests off a downstream connection. For every request it builds an :class:`Exchange` and awaits
``listener.current.handle(exchange)`` where ``listener`` is the :class:`ListenerRef` it was given when it was
created. ``current`` is read once per request: this is what makes config swaps atomic (an in-flight request
finishes on the compiled config it started with).

The core (router, filters, forwarder) then

* reads the request body from :attr:`Exchange.body` (a :class:`BodySource`),
* answers through :attr:`Exchange.response` (a :class:`ResponseSink`): ``start`` once, ``send`` any number of
  times, ``end`` once (or ``abort``),
* forwards upstream through an :class:`EndpointPool` made by the :class:`PoolFactory` registered for the
  cluster's :class:`~nantian.ir.AppProtocol` (see :func:`register_pool_factory`; HTTP/1.1 is built in, an h2c
  pool registers for ``AppProtocol.H2C``).

Conventions, everywhere in this module:

* header names are lower-case ``str``; values are ``str``. Bytes from the wire are decoded as ISO-8859-1
  (``latin-1``), which is lossless, and encoded back the same way.
* hop-by-hop headers (``connection``, ``keep-alive``, ``transfer-encoding``, ``te`` (except ``te: trailers``),
  ``upgrade``, ``proxy-connection``, and names listed in ``connection``) are stripped by the core, not by front
  ends; front ends pass what they received. HTTP/2 front ends pass pseudo-headers as attributes of
  :class:`RequestHead`, never in ``headers``.
* ``handle`` never raises for anything a peer did: it answers (4xx/5xx) or aborts the response. A front end should
  still treat an exception escaping ``handle`` as a bug: log it, abort the stream.

Nothing in here does I/O; the concrete classes live in the front ends and pools.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable
from typing import Protocol

from nantian.ir import AppProtocol, Cluster, Endpoint

__all__ = [
    "BodySource",
    "ByteStream",
    "EmptyBody",
    "EndpointPool",
    "Exchange",
    "ExchangeHandler",
    "Headers",
    "ListenerRef",
    "PoolFactory",
    "RequestHead",
    "ResponseSink",
    "UpstreamError",
    "UpstreamRequest",
    "UpstreamResponse",
    "pool_factory",
    "register_pool_factory",
]

Headers = list[tuple[str, str]]
"""Header fields in order: (lower-case name, value). Repeated names stay separate entries."""


@dataclasses.dataclass(slots=True)
class RequestHead:
    """The request as a front end received it, before any routing or filter.

    :param method: ``GET``, ``POST`` ... as sent (HTTP/2 ``:method``).
    :param target: The raw request target: ``/path?query`` (origin form), as sent, not decoded. For an
        absolute-form HTTP/1.1 target (``http://host/path``) the front end passes the path part here and the
        host in ``authority``. HTTP/2: ``:path``.
    :param authority: The Host header (HTTP/2 ``:authority``, else ``host``), with port if sent; ``""`` if none.
    :param scheme: ``"http"`` or ``"https"``: what the downstream connection is (HTTP/2 ``:scheme``).
    :param headers: Every other header field, lower-case names, in order. HTTP/1.1 front ends include ``host``
        here too; HTTP/2 front ends do not include pseudo-headers.
    :param http_version: ``"1.0"``, ``"1.1"`` or ``"2"``.
    :param client: The downstream peer ``(ip, port)``, if known.
    :param sni_section: HTTPS only: the Gateway listener section (``namespace/gateway/listener``) whose
        certificate the TLS handshake selected by SNI. The core answers 421 when the Host resolves to a different
        section of the same listener (and the IR listener has ``detect_misdirected``). ``None`` for plain HTTP or
        when the SNI matched no section.
    :param sni: The TLS server name the client sent, if any.
    :param raw_headers: Optional fast path for HTTP/1.1: the header lines exactly as received (``name: value\\r\\n``
        each, no request line, no final empty line). When present and no filter changes headers, the HTTP/1.1
        upstream sends these bytes instead of re-encoding ``headers``. A front end that cannot provide them
        exactly passes ``None``.
    """

    method: str
    target: str
    authority: str
    scheme: str
    headers: Headers
    http_version: str = "1.1"
    client: tuple[str, int] | None = None
    sni_section: str | None = None
    sni: str | None = None
    raw_headers: bytes | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), or ``None``."""
        for k, v in self.headers:
            if k == name:
                return v
        return None


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


class EmptyBody:
    """A :class:`BodySource` with nothing in it (GET requests, local answers)."""

    content_length: int | None = 0

    async def read(self) -> bytes:
        return b""

    @property
    def trailers(self) -> Headers | None:
        return None


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


@dataclasses.dataclass(slots=True)
class Exchange:
    """One request/response between a front end and the core.

    :param listener: The IR listener name (``namespace/gateway/PORT/PROTOCOL``) the request came in on.
    :param head: The request head.
    :param body: The request body (:class:`EmptyBody` if there is none).
    :param response: Where the response goes.
    :param received_at: ``loop.time()`` when the request head was complete (for durations and timeouts).
    :param upgrade: Set by an HTTP/1.1 front end when the request asked for an upgrade
        (``connection: upgrade`` + ``upgrade: ...``) and the connection can be taken over: called by the core
        *instead of* ``response.start`` when the upstream answered ``101``; it writes the 101 head with the given
        headers and returns the downstream as a raw :class:`ByteStream`. ``None``: upgrades are not possible on
        this front end (HTTP/2 uses extended CONNECT instead, which the HTTP/2 front end handles).
    """

    listener: str
    head: RequestHead
    body: BodySource
    response: ResponseSink
    received_at: float
    upgrade: Callable[[int, Headers], ByteStream] | None = None


class ExchangeHandler(Protocol):
    """What a compiled listener is to a front end: one coroutine per request."""

    async def handle(self, exchange: Exchange) -> None:
        """Route, filter, forward and answer ``exchange``. Returns when the response has ended or was aborted."""
        ...


@dataclasses.dataclass(slots=True, eq=False)
class ListenerRef:
    """The runtime's handle for one bound listener; front ends hold it for the listener's lifetime.

    ``current`` is swapped atomically by the runtime on every applied snapshot. Front ends read it once per
    request: ``await ref.current.handle(exchange)``. ``name`` is the IR listener name.
    """

    name: str
    current: ExchangeHandler


# --- Upstream side --------------------------------------------------------------------------------------------


class UpstreamError(Exception):
    """An upstream attempt failed before a response head arrived.

    ``kind`` says how: ``"connect"`` (refused, unreachable, connect timeout), ``"reset"`` (the connection closed or
    broke before the response head; the request may or may not have been processed), ``"protocol"`` (the upstream
    sent something that is not HTTP). The forwarder turns these into 503 (connect) or 502 and may retry them.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclasses.dataclass(slots=True)
class UpstreamRequest:
    """The request as the core forwards it: routing and filters applied, hop-by-hop headers removed.

    ``headers`` are end-to-end headers without ``host`` and without pseudo-headers; ``authority`` becomes
    ``host`` (HTTP/1.1) or ``:authority`` (HTTP/2). ``raw_headers`` is the front end's raw header block when no
    filter changed headers and the request carries no hop-by-hop headers; ``extra_headers`` must then be sent
    after it (``x-forwarded-for`` / ``x-forwarded-proto``), and ``headers`` is left empty. The core sets
    ``raw_headers`` only for clusters whose protocol is ``HTTP1`` or ``WEBSOCKET`` (served by the built-in HTTP/1.1
    pool); any other pool (h2c) always gets ``raw_headers=None`` and complete ``headers``.
    """

    method: str
    target: str
    authority: str
    scheme: str
    headers: Headers
    raw_headers: bytes | None = None
    extra_headers: bytes = b""
    upgrade: str | None = None
    """The ``upgrade`` token (``websocket``) when the downstream asked for an HTTP/1.1 upgrade; the HTTP/1.1 pool
    then sends ``connection: upgrade`` and ``upgrade: <token>``."""


class UpstreamResponse(Protocol):
    """The upstream's answer. Reading ``body`` to its end returns the connection to its pool; ``abort`` closes it.

    ``headers`` are all the response's header fields (hop-by-hop included; the core strips them).
    """

    status: int
    headers: Headers
    body: BodySource

    def abort(self) -> None:
        """Stop reading: close (HTTP/1.1) or reset the stream (HTTP/2). Safe to call after the body ended."""
        ...

    def detach(self) -> ByteStream:
        """After a ``101`` response: take over the upstream connection as a raw byte stream (never pooled)."""
        ...


class EndpointPool(Protocol):
    """Connections to one endpoint of one cluster, reused across requests. Made by a :class:`PoolFactory`."""

    @property
    def active_requests(self) -> int:
        """Requests in flight on this endpoint (for least-request balancing)."""
        ...

    async def request(self, req: UpstreamRequest, body: BodySource) -> UpstreamResponse:
        """Send ``req`` with ``body`` on a pooled (or new) connection and return once the response head is in.

        Streams ``body`` concurrently with waiting for the response (a response may come before the body ends).
        Connects within the cluster's ``connect_timeout``.

        :raises UpstreamError: on connect failure, connection loss before the response head, or garbage.
        """
        ...

    def close(self) -> None:
        """Close idle connections now and every other one when its response ends; the pool is not used again."""
        ...


PoolFactory = Callable[[Cluster, Endpoint, "ssl.SSLContext | None"], EndpointPool]
"""Make the pool for one endpoint of ``cluster``. The SSL context is ``None`` for plain-text upstreams; otherwise it
comes from the cluster's :class:`~nantian.ir.UpstreamTls` (server name: ``cluster.tls.sni``)."""

_POOL_FACTORIES: dict[AppProtocol, PoolFactory] = {}


def register_pool_factory(protocol: AppProtocol, factory: PoolFactory) -> None:
    """Use ``factory`` for clusters speaking ``protocol`` in configs compiled from now on.

    The HTTP/1.1 pool registers itself for ``AppProtocol.HTTP1`` and ``AppProtocol.WEBSOCKET``; an h2c pool
    registers for ``AppProtocol.H2C``. A cluster whose protocol has no factory uses the HTTP/1.1 one.
    """
    _POOL_FACTORIES[protocol] = factory


def pool_factory(protocol: AppProtocol) -> PoolFactory | None:
    """The factory registered for ``protocol``, if any."""
    return _POOL_FACTORIES.get(protocol)
