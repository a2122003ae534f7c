"""Assembling IR listeners for one Gateway: one :class:`~nantian.ir.Listener` per port (and socket type), with
the virtual hosts or stream routes of every listener section bound there."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from nantian.ir import HttpRoute, Listener, Protocol, StreamRoute, TlsCertificate, TlsMode, VirtualHost
from nantian.translate.precedence import MatchKey, RouteAge
from nantian.translate.state import GatewayState, ListenerState

__all__ = ["GatewayRoutes", "build_listeners"]


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


def _family(protocol: str) -> str:
    return "udp" if protocol == "UDP" else "tcp"


def build_listeners(state: GatewayState, routes: GatewayRoutes) -> list[Listener]:
    """IR listeners of a programmed Gateway (callers skip Gateways that are not)."""
    gw = state.gateway
    assert state.address is not None
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
                    entries.sort(key=lambda e: e[0])
                    vhosts.append(
                        VirtualHost(
                            section=lst.section,
                            section_hostname=lst.hostname,
                            hostname=hostname,
                            routes=tuple(r for _, r in entries),
                        )
                    )
            else:
                found = routes.streams.get(lst.section, [])
                found.sort(key=lambda e: e[0])
                streams.extend(r for _, r in found)
        tls_mode = None
        if protocol == "HTTPS":
            tls_mode = TlsMode.TERMINATE
        elif protocol == "TLS":
            tls_mode = TlsMode.PASSTHROUGH if sections[0].tls_mode == "Passthrough" else TlsMode.TERMINATE
        vhosts.sort(key=lambda v: (v.section, v.hostname))
        out.append(
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
    return out
