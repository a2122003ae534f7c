"""Compiled stream listeners (TCP, UDP, TLS): which route a new connection takes and which endpoint serves it.

A TCP or UDP listener serves its first stream route (the Gateway API allows several TCPRoutes on a listener but
gives no way to tell their connections apart; the IR lists them in precedence order). A TLS listener picks the route
by the SNI of the connection's ClientHello: exact hostnames first, then the longest wildcard, then a route without
hostnames (:func:`nantian.proxy.clienthello.select_stream_route`). TLS is terminated for a route whose Gateway listener
(``section``) has certificates in the IR listener, and passed through otherwise, so one port may mix both modes.
Within a route a backend is chosen by weight, then an endpoint of its cluster by the cluster's load balancer. A
backend share whose cluster is ``None`` (an invalid backendRef) or which has no endpoints is not served: the
connection is closed.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from nantian.ir import Cluster, Endpoint, Listener, Protocol, Secret, StreamRoute, TlsMode
from nantian.proxy.balancer import EndpointPicker, WeightedChoice
from nantian.proxy.clienthello import select_stream_route
from nantian.proxy.tls import ServerTls, build_server_tls

__all__ = [
    "STREAM_PROTOCOLS",
    "CompiledStreamListener",
    "StreamBackends",
    "StreamListenerRef",
    "StreamTarget",
    "compile_stream_listener",
]

STREAM_PROTOCOLS = frozenset({Protocol.TCP, Protocol.UDP, Protocol.TLS})
"""IR listener protocols served by the stream proxy."""


@attrs.frozen(kw_only=True)
class StreamTarget:
    """Where one connection (or UDP session) goes."""

    cluster: str
    address: str
    port: int
    connect_timeout: float


@attrs.frozen
class _Backend:
    name: str
    cluster: Cluster | None
    picker: EndpointPicker[Endpoint] | None


class StreamBackends:
    """The weighted backends of one :class:`~nantian.ir.StreamRoute`.

    :meth:`pick` returns a :class:`StreamTarget`, or a string saying why the connection cannot be served.
    """

    def __init__(self, route: StreamRoute, clusters: Mapping[str, Cluster]) -> None:
        self.route = route
        items: list[tuple[_Backend, int]] = []
        for wc in route.backends:
            cluster = clusters.get(wc.cluster) if wc.cluster is not None else None
            if cluster is None:
                items.append((_Backend(wc.cluster or "-", None, None), wc.weight))
                continue
            picker = EndpointPicker([(ep, ep.weight) for ep in cluster.endpoints], cluster.load_balancer)
            items.append((_Backend(cluster.name, cluster, picker), wc.weight))
        self._choice = WeightedChoice(items)

    def pick(self) -> StreamTarget | str:
        """An endpoint for a new connection, or why there is none."""
        backend = self._choice.pick()
        if backend is None:
            return "no backend"
        if backend.cluster is None or backend.picker is None:
            return f"invalid backend {backend.name}"
        endpoint = backend.picker.pick()
        if endpoint is None:
            return f"no endpoints in {backend.name}"
        return StreamTarget(
            cluster=backend.name,
            address=endpoint.address,
            port=endpoint.port,
            connect_timeout=backend.cluster.connect_timeout,
        )


class CompiledStreamListener:
    """One TCP, UDP or TLS IR listener, ready to route new connections. Immutable once built."""

    def __init__(self, listener: Listener, clusters: Mapping[str, Cluster], server_tls: ServerTls | None) -> None:
        self.name = listener.name
        self.protocol = listener.protocol
        self.tls_mode = listener.tls_mode
        self.server_tls = server_tls
        self.routes = listener.stream_routes
        self._terminating = (
            frozenset(c.section for c in listener.certificates) if server_tls is not None else frozenset()
        )
        self._backends = {id(r): StreamBackends(r, clusters) for r in listener.stream_routes}

    def terminates(self, route: StreamRoute) -> bool:
        """Whether connections of ``route`` (of this TLS listener) have their TLS terminated here."""
        return route.section in self._terminating

    @property
    def by_sni(self) -> bool:
        """Whether routes are chosen by SNI (TLS listeners)."""
        return self.protocol is Protocol.TLS

    def select(self, server_name: str | None = None) -> StreamBackends | None:
        """The route for a new connection (TLS: by ``server_name``), or ``None`` when none matches."""
        if not self.routes:
            return None
        route = select_stream_route(self.routes, server_name) if self.by_sni else self.routes[0]
        return self._backends[id(route)] if route is not None else None


def compile_stream_listener(
    listener: Listener, clusters: Mapping[str, Cluster], secrets: Mapping[str, Secret]
) -> CompiledStreamListener:
    """Compile a TCP, UDP or TLS listener (TLS with certificates: its server contexts too).

    :raises ConfigRejected: TLS termination without usable certificates.
    """
    server_tls = None
    if listener.protocol is Protocol.TLS and (listener.tls_mode is TlsMode.TERMINATE or listener.certificates):
        server_tls = build_server_tls(listener, secrets)
    return CompiledStreamListener(listener, clusters, server_tls)


@attrs.define(eq=False)
class StreamListenerRef:
    """The runtime's handle of one bound stream listener; ``current`` is swapped on every applied snapshot and
    read once per new connection (UDP: per new session)."""

    name: str
    current: CompiledStreamListener
