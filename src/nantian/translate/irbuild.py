"""Assembling IR listeners for one Gateway: one :class:`~nantian.ir.Listener` per port (and socket type), with
the virtual hosts or stream routes of every listener section bound there."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from nantian.ir import HttpRoute, Listener, Protocol, StreamRoute, TlsCertificate, TlsMode, VirtualHost
from nantian.resources import ObjectRef
from nantian.translate.precedence import MatchKey, RouteAge
from nantian.translate.state import GatewayState, ListenerState

__all__ = ["GatewayRoutes", "IrReuse", "build_listeners"]


@attrs.define
class GatewayRoutes:
    """What routes contributed to one Gateway's listener sections, gathered while routes are translated."""

    vhosts: dict[str, dict[str, list[tuple[MatchKey, HttpRoute]]]] = attrs.field(factory=dict)
    """section -> hostname -> IR routes with their precedence keys."""
    streams: dict[str, list[tuple[RouteAge, StreamRoute]]] = attrs.field(factory=dict)

    def add_http(self, listener: ListenerState, hostname: str, entries: Sequence[tuple[MatchKey, HttpRoute]]) -> None:
        """Routes of one route object served on ``listener`` for ``hostname``."""
        self.vhosts.setdefault(listener.section, {}).setdefault(hostname, []).extend(entries)

    def add_stream(self, listener: ListenerState, age: RouteAge, route: StreamRoute) -> None:
        """A stream route served on ``listener``; ``age`` orders routes of one listener (oldest first)."""
        self.streams.setdefault(listener.section, []).append((age, route))


class IrReuse:
    """The virtual hosts and listeners built last time for each Gateway: an equal new one is replaced by the old
    object, so unchanged IR keeps its identity (and its cached encoding, see :meth:`nantian.ir.Snapshot.build`)."""

    def __init__(self) -> None:
        self._vhosts: dict[ObjectRef, dict[tuple[str, str | None, str], VirtualHost]] = {}
        self._listeners: dict[ObjectRef, dict[str, Listener]] = {}
        self._fresh_vhosts: dict[tuple[str, str | None, str], VirtualHost] = {}
        self._fresh_listeners: dict[str, Listener] = {}
        self._gateway: ObjectRef | None = None

    def start(self, gateway: ObjectRef) -> None:
        """Start building ``gateway``'s listeners; what is not built again is forgotten at :meth:`finish`."""
        self._gateway = gateway
        self._fresh_vhosts, self._fresh_listeners = {}, {}

    def finish(self) -> None:
        """Keep what the Gateway's build used."""
        if self._gateway is not None:
            self._vhosts[self._gateway] = self._fresh_vhosts
            self._listeners[self._gateway] = self._fresh_listeners
        self._gateway = None

    def forget_except(self, gateways: set[ObjectRef]) -> None:
        """Forget the Gateways not in ``gateways``."""
        for known in (self._vhosts, self._listeners):
            for ref in [r for r in known if r not in gateways]:
                del known[ref]

    def virtual_host(
        self, section: str, section_hostname: str | None, hostname: str, routes: tuple[HttpRoute, ...]
    ) -> VirtualHost:
        """The virtual host with these fields, the old object if one was built with equal routes."""
        key = (section, section_hostname, hostname)
        old = self._vhosts.get(self._gateway, {}).get(key) if self._gateway is not None else None
        if old is not None and old.routes == routes:
            vhost = old
        else:
            vhost = VirtualHost(section=section, section_hostname=section_hostname, hostname=hostname, routes=routes)
        self._fresh_vhosts[key] = vhost
        return vhost

    def listener(self, listener: Listener) -> Listener:
        """``listener``, or the old object if an equal one was built."""
        old = self._listeners.get(self._gateway, {}).get(listener.name) if self._gateway is not None else None
        if old is not None and old == listener:
            listener = old
        self._fresh_listeners[listener.name] = listener
        return listener


def _family(protocol: str) -> str:
    return "udp" if protocol == "UDP" else "tcp"


def build_listeners(state: GatewayState, routes: GatewayRoutes, reuse: IrReuse | None = None) -> list[Listener]:
    """IR listeners of a programmed Gateway (callers skip Gateways that are not); with ``reuse``, equal virtual
    hosts and listeners are the objects built last time."""
    gw = state.gateway
    assert state.address is not None
    reuse = reuse or IrReuse()
    reuse.start(state.ref)
    groups: dict[tuple[int, str], list[ListenerState]] = {}
    for lst in state.all_listeners():
        if lst.usable:
            groups.setdefault((lst.port, _family(lst.protocol)), []).append(lst)
    out: list[Listener] = []
    for (port, _), sections in sorted(groups.items()):
        protocol = sections[0].protocol
        sections = sorted(sections, key=lambda s: s.section)
        certificates: list[TlsCertificate] = []
        vhosts: list[VirtualHost] = []
        streams: list[StreamRoute] = []
        for lst in sections:
            for secret in lst.certificates:
                certificates.append(
                    TlsCertificate(
                        hostname=lst.hostname,
                        secret=secret,
                        section=lst.section,
                        client_validation=lst.client_validation,
                    )
                )
            if protocol in ("HTTP", "HTTPS"):
                for hostname, entries in routes.vhosts.get(lst.section, {}).items():
                    if len(entries) > 1:
                        entries.sort(key=_precedence)
                    vhosts.append(
                        reuse.virtual_host(lst.section, lst.hostname, hostname, tuple([r for _, r in entries]))
                    )
            else:
                found = routes.streams.get(lst.section, [])
                found.sort(key=_stream_order)
                streams.extend(r for _, r in found)
        tls_mode = None
        if protocol == "HTTPS":
            tls_mode = TlsMode.TERMINATE
        elif protocol == "TLS":
            # Mixed ports terminate where a section has certificates; the listener's mode is the default.
            modes = {section.tls_mode for section in sections}
            tls_mode = TlsMode.PASSTHROUGH if modes == {"Passthrough"} else TlsMode.TERMINATE
        vhosts.sort(key=lambda v: (v.section, v.hostname))
        listener = reuse.listener(
            Listener(
                name=f"{gw.metadata.namespace}/{gw.metadata.name}/{port}/{protocol}",
                gateway=f"{gw.metadata.namespace}/{gw.metadata.name}",
                address=state.address,
                port=port,
                protocol=Protocol(protocol),
                tls_mode=tls_mode,
                certificates=tuple(certificates),
                virtual_hosts=tuple(vhosts),
                stream_routes=tuple(streams),
            )
        )
        out.append(listener)
    reuse.finish()
    return out


def _stream_order(entry: tuple[RouteAge, StreamRoute]) -> tuple[RouteAge, str]:
    return entry[0], entry[1].name


def _precedence(entry: tuple[MatchKey, HttpRoute]) -> tuple[MatchKey, bool]:
    # MatchKey orders routes completely but for an HTTPRoute and a GRPCRoute of the same namespace/name (the
    # HTTPRoute first, as routes are translated kind by kind), so the order routes were added in never shows.
    # (A route is added at most once per section and hostname: translate_route places it once however many of
    # its parentRefs select the listener.)
    return entry[0], entry[1].grpc
