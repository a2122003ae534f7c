"""GRPCRoute: method and header matches, filters and backends."""

from __future__ import annotations

import attrs

from nantian.resources.httproute import HTTPHeaderFilter, HTTPRequestMirrorFilter, SessionPersistence
from nantian.resources.meta import GATEWAY_GROUP, KubeObjectBase, ObjectMeta
from nantian.resources.references import BackendRef, LocalObjectReference, ParentReference

__all__ = [
    "GRPCBackendRef",
    "GRPCHeaderMatch",
    "GRPCMethodMatch",
    "GRPCRoute",
    "GRPCRouteFilter",
    "GRPCRouteMatch",
    "GRPCRouteRule",
    "GRPCRouteSpec",
]


@attrs.frozen(kw_only=True)
class GRPCMethodMatch:
    """Service and/or method, ``Exact`` (default) or ``RegularExpression``."""

    type: str = "Exact"
    service: str | None = None
    method: str | None = None


@attrs.frozen(kw_only=True)
class GRPCHeaderMatch:
    """A metadata (header) match, ``Exact`` (default) or ``RegularExpression``."""

    type: str = "Exact"
    name: str
    value: str


@attrs.frozen(kw_only=True)
class GRPCRouteMatch:
    """Conditions ANDed together; an empty match matches every call."""

    method: GRPCMethodMatch | None = None
    headers: tuple[GRPCHeaderMatch, ...] = ()


@attrs.frozen(kw_only=True)
class GRPCRouteFilter:
    """One filter; ``type`` says which of the other fields is set."""

    type: str
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_mirror: HTTPRequestMirrorFilter | None = None
    extension_ref: LocalObjectReference | None = None


@attrs.frozen(kw_only=True)
class GRPCBackendRef(BackendRef):
    """A weighted backend with its own filters."""

    filters: tuple[GRPCRouteFilter, ...] = ()


@attrs.frozen(kw_only=True)
class GRPCRouteRule:
    """Matches (none: every call), filters and backends of one rule."""

    name: str | None = None
    matches: tuple[GRPCRouteMatch, ...] = ()
    filters: tuple[GRPCRouteFilter, ...] = ()
    backend_refs: tuple[GRPCBackendRef, ...] = ()
    session_persistence: SessionPersistence | None = None


@attrs.frozen(kw_only=True)
class GRPCRouteSpec:
    """Parents, hostnames and rules."""

    parent_refs: tuple[ParentReference, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[GRPCRouteRule, ...] = ()


@attrs.frozen(kw_only=True)
class GRPCRoute(KubeObjectBase):
    """Routes gRPC calls from its parents' listeners to backends."""

    KIND = "GRPCRoute"
    GROUP = GATEWAY_GROUP

    metadata: ObjectMeta
    spec: GRPCRouteSpec
