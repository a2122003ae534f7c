"""TLSRoute, TCPRoute and UDPRoute: routes that forward whole connections (or datagrams)."""

from __future__ import annotations

import attrs

from nantian.resources.meta import GATEWAY_GROUP, KubeObjectBase, ObjectMeta
from nantian.resources.references import BackendRef, ParentReference

__all__ = [
    "TCPRoute",
    "TCPRouteRule",
    "TCPRouteSpec",
    "TLSRoute",
    "TLSRouteRule",
    "TLSRouteSpec",
    "UDPRoute",
    "UDPRouteRule",
    "UDPRouteSpec",
]


@attrs.frozen(kw_only=True)
class TLSRouteRule:
    """Backends for connections whose SNI matches the route's hostnames."""

    name: str | None = None
    backend_refs: tuple[BackendRef, ...]


@attrs.frozen(kw_only=True)
class TLSRouteSpec:
    """Parents, SNI hostnames and rules."""

    parent_refs: tuple[ParentReference, ...] = ()
    hostnames: tuple[str, ...]
    rules: tuple[TLSRouteRule, ...]


@attrs.frozen(kw_only=True)
class TLSRoute(KubeObjectBase):
    """Routes TLS connections by SNI (passthrough, or terminated at the Gateway)."""

    KIND = "TLSRoute"
    GROUP = GATEWAY_GROUP

    metadata: ObjectMeta
    spec: TLSRouteSpec


@attrs.frozen(kw_only=True)
class TCPRouteRule:
    """Weighted backends for every connection."""

    name: str | None = None
    backend_refs: tuple[BackendRef, ...]


@attrs.frozen(kw_only=True)
class TCPRouteSpec:
    """Parents and rules."""

    parent_refs: tuple[ParentReference, ...] = ()
    rules: tuple[TCPRouteRule, ...]


@attrs.frozen(kw_only=True)
class TCPRoute(KubeObjectBase):
    """Forwards TCP connections from its parents' listeners to backends."""

    KIND = "TCPRoute"
    GROUP = GATEWAY_GROUP

    metadata: ObjectMeta
    spec: TCPRouteSpec


@attrs.frozen(kw_only=True)
class UDPRouteRule:
    """Weighted backends for every datagram flow."""

    name: str | None = None
    backend_refs: tuple[BackendRef, ...]


@attrs.frozen(kw_only=True)
class UDPRouteSpec:
    """Parents and rules."""

    parent_refs: tuple[ParentReference, ...] = ()
    rules: tuple[UDPRouteRule, ...]


@attrs.frozen(kw_only=True)
class UDPRoute(KubeObjectBase):
    """Forwards UDP datagrams from its parents' listeners to backends."""

    KIND = "UDPRoute"
    GROUP = GATEWAY_GROUP

    metadata: ObjectMeta
    spec: UDPRouteSpec
