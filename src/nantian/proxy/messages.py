"""The values a front end and the core exchange per request: the request head, the exchange, the upstream request.

Compiled with the hot path (``nantian._native``): construct them freely, do not subclass them. The interfaces
around them (:class:`~nantian.proxy.exchange.ResponseSink`, :class:`~nantian.proxy.exchange.BodySource`, ...) live
in :mod:`nantian.proxy.exchange`, which re-exports everything here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from nantian.proxy.interfaces import BodySource, ByteStream, ExchangeHandler, ResponseSink

__all__ = ["EmptyBody", "Exchange", "Headers", "ListenerRef", "RequestHead", "UpstreamRequest"]

Headers = list[tuple[str, str]]
"""Header fields in order: (lower-case name, value). Repeated names stay separate entries."""


@dataclasses.dataclass(slots=True, init=False)
class RequestHead:
    """The request as a front end received it, before any routing or filter.

    :param method: ``GET``, ``POST`` ... as sent (HTTP/2 ``:method``).
    :param target: The raw request target: ``/path?query`` (origin form), as sent, not decoded. For an
        absolute-form HTTP/1.1 target (``http://host/path``) the front end passes the path part here and the
        host in ``authority``. HTTP/2: ``:path``.
    :param authority: The Host header (HTTP/2 ``:authority``, else ``host``), with port if sent; ``""`` if none.
    :param scheme: ``"http"`` or ``"https"``: what the downstream connection is (HTTP/2 ``:scheme``).
    :param headers: Every other header field, lower-case names, in order. Both front ends include ``host`` here
        (HTTP/2: the ``:authority``, first), so route matches and filters on ``host`` behave the same over both;
        HTTP/2 front ends include no other pseudo-header.
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
    http_version: str
    client: tuple[str, int] | None
    sni_section: str | None
    sni: str | None
    raw_headers: bytes | None

    def __init__(
        self,
        method: str,
        target: str,
        authority: str,
        scheme: str,
        headers: Headers,
        http_version: str = "1.1",
        client: tuple[str, int] | None = None,
        sni_section: str | None = None,
        sni: str | None = None,
        raw_headers: bytes | None = None,
    ) -> None:
        # written out: mypyc compiles an explicit __init__, while the one dataclasses generates runs interpreted
        self.method = method
        self.target = target
        self.authority = authority
        self.scheme = scheme
        self.headers = headers
        self.http_version = http_version
        self.client = client
        self.sni_section = sni_section
        self.sni = sni
        self.raw_headers = raw_headers

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), or ``None``."""
        for k, v in self.headers:
            if k == name:
                return v
        return None


class EmptyBody:
    """A :class:`BodySource` with nothing in it (GET requests, local answers)."""

    content_length: int | None = 0

    async def read(self) -> bytes:
        return b""

    @property
    def trailers(self) -> Headers | None:
        return None


@dataclasses.dataclass(slots=True, init=False)
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
    upgrade: Callable[[int, Headers], ByteStream] | None

    def __init__(
        self,
        listener: str,
        head: RequestHead,
        body: BodySource,
        response: ResponseSink,
        received_at: float,
        upgrade: Callable[[int, Headers], ByteStream] | None = None,
    ) -> None:
        self.listener = listener
        self.head = head
        self.body = body
        self.response = response
        self.received_at = received_at
        self.upgrade = upgrade


@dataclasses.dataclass(slots=True, eq=False)
class ListenerRef:
    """The runtime's handle for one bound listener; front ends hold it for the listener's lifetime.

    ``current`` is swapped atomically by the runtime on every applied snapshot. Front ends read it once per
    request: ``await ref.current.handle(exchange)``. ``name`` is the IR listener name.
    """

    name: str
    current: ExchangeHandler


# --- Upstream side --------------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True, init=False)
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
    raw_headers: bytes | None
    extra_headers: bytes
    upgrade: str | None
    """The ``upgrade`` token (``websocket``) when the downstream asked for an HTTP/1.1 upgrade; the HTTP/1.1 pool
    then sends ``connection: upgrade`` and ``upgrade: <token>``."""

    def __init__(
        self,
        method: str,
        target: str,
        authority: str,
        scheme: str,
        headers: Headers,
        raw_headers: bytes | None = None,
        extra_headers: bytes = b"",
        upgrade: str | None = None,
    ) -> None:
        self.method = method
        self.target = target
        self.authority = authority
        self.scheme = scheme
        self.headers = headers
        self.raw_headers = raw_headers
        self.extra_headers = extra_headers
        self.upgrade = upgrade
