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

import ssl
from collections.abc import Callable
from typing import Protocol

from nantian.ir import AppProtocol, Cluster, Endpoint
from nantian.proxy.interfaces import BodySource, ByteStream, ExchangeHandler, ResponseSink
from nantian.proxy.messages import EmptyBody, Exchange, Headers, ListenerRef, RequestHead, UpstreamRequest

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


class UpstreamError(Exception):
    """An upstream attempt failed before a response head arrived.

    ``kind`` says how: ``"connect"`` (refused, unreachable, connect timeout), ``"reset"`` (the connection closed or
    broke before the response head; the request may or may not have been processed), ``"protocol"`` (the upstream
    sent something that is not HTTP). The forwarder turns these into 503 (connect) or 502 and may retry them.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


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
