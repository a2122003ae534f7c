"""Which (group, version, kind) nantian reads as which class; :class:`UnknownObject` for the rest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import attrs

from nantian.resources.core import ConfigMap, EndpointSlice, Namespace, Secret, Service
from nantian.resources.gateway import Gateway, GatewayClass, ListenerSet
from nantian.resources.grpcroute import GRPCRoute
from nantian.resources.httproute import HTTPRoute
from nantian.resources.meta import ObjectMeta, ObjectRef
from nantian.resources.policy import BackendTLSPolicy, ReferenceGrant
from nantian.resources.streamroutes import TCPRoute, TLSRoute, UDPRoute

__all__ = ["KIND_CLASSES", "SERVED_VERSIONS", "KubeObject", "TypedObject", "UnknownObject", "class_for"]


@attrs.frozen(kw_only=True)
class UnknownObject:
    """An object of a kind (or ``apiVersion``) nantian does not use, kept as the raw document."""

    api_version: str
    kind: str
    metadata: ObjectMeta
    body: Mapping[str, Any] = attrs.field(eq=True, hash=False, repr=False)
    """The whole document, as read."""

    @property
    def ref(self) -> ObjectRef:
        """``ObjectRef(kind, namespace as written, name)``."""
        return ObjectRef(self.kind, self.metadata.namespace, self.metadata.name)


TypedObject: TypeAlias = (
    GatewayClass
    | Gateway
    | ListenerSet
    | HTTPRoute
    | GRPCRoute
    | TLSRoute
    | TCPRoute
    | UDPRoute
    | ReferenceGrant
    | BackendTLSPolicy
    | Service
    | EndpointSlice
    | Secret
    | ConfigMap
    | Namespace
)
KubeObject: TypeAlias = TypedObject | UnknownObject
"""Anything :func:`nantian.resources.parse_object` returns."""

KIND_CLASSES: Mapping[str, type[TypedObject]] = {
    cls.KIND: cls
    for cls in (
        GatewayClass,
        Gateway,
        ListenerSet,
        HTTPRoute,
        GRPCRoute,
        TLSRoute,
        TCPRoute,
        UDPRoute,
        ReferenceGrant,
        BackendTLSPolicy,
        Service,
        EndpointSlice,
        Secret,
        ConfigMap,
        Namespace,
    )
}
"""Typed classes by kind name."""

SERVED_VERSIONS: Mapping[str, frozenset[str]] = {
    # Every version the standard CRDs define; their schemas are identical to v1. v1alpha2 TCPRoute/UDPRoute
    # and v1alpha2/v1alpha3 TLSRoute are defined but not served by the standard channel; the experimental
    # channel (and the upstream conformance manifests) use them, so they are read as v1.
    "GatewayClass": frozenset({"v1", "v1beta1"}),
    "Gateway": frozenset({"v1", "v1beta1"}),
    "HTTPRoute": frozenset({"v1", "v1beta1"}),
    "GRPCRoute": frozenset({"v1"}),
    "ReferenceGrant": frozenset({"v1", "v1beta1"}),
    "BackendTLSPolicy": frozenset({"v1", "v1alpha3"}),
    "ListenerSet": frozenset({"v1"}),
    "TLSRoute": frozenset({"v1", "v1alpha2", "v1alpha3"}),
    "TCPRoute": frozenset({"v1", "v1alpha2"}),
    "UDPRoute": frozenset({"v1", "v1alpha2"}),
    "Service": frozenset({"v1"}),
    "Secret": frozenset({"v1"}),
    "ConfigMap": frozenset({"v1"}),
    "Namespace": frozenset({"v1"}),
    "EndpointSlice": frozenset({"v1"}),
}
"""``apiVersion`` versions read as the typed class, by kind."""


def class_for(api_version: str, kind: str) -> type[TypedObject] | None:
    """The typed class for ``apiVersion``/``kind``, or ``None`` (the object stays an :class:`UnknownObject`)."""
    cls = KIND_CLASSES.get(kind)
    if cls is None:
        return None
    group, _, version = api_version.rpartition("/")
    if group != cls.GROUP or version not in SERVED_VERSIONS[kind]:
        return None
    return cls
