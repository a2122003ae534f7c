"""GatewayClass, Gateway and ListenerSet (``gateway.networking.k8s.io``), with their listeners."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from nantian.resources.meta import GATEWAY_GROUP, KubeObjectBase, LabelSelector, ObjectMeta, map_field
from nantian.resources.references import (
    ObjectReference,
    ParametersReference,
    SecretObjectReference,
)

__all__ = [
    "AllowedListeners",
    "AllowedRoutes",
    "FrontendTLSConfig",
    "FrontendTLSValidation",
    "Gateway",
    "GatewayBackendTLS",
    "GatewayClass",
    "GatewayClassSpec",
    "GatewayInfrastructure",
    "GatewaySpec",
    "GatewaySpecAddress",
    "GatewayTLSConfig",
    "GatewayTLSSettings",
    "Listener",
    "ListenerEntry",
    "ListenerNamespaces",
    "ListenerSet",
    "ListenerSetSpec",
    "ListenerTLSConfig",
    "LocalParametersReference",
    "ParentGatewayReference",
    "RouteGroupKind",
    "RouteNamespaces",
    "TLSConfig",
    "TLSPortConfig",
]


@attrs.frozen(kw_only=True)
class GatewayClassSpec:
    """Which controller implements Gateways of this class."""

    controller_name: str
    description: str | None = None
    parameters_ref: ParametersReference | None = None


@attrs.frozen(kw_only=True)
class GatewayClass(KubeObjectBase):
    """A class of Gateways handled by one controller. Cluster-scoped."""

    KIND = "GatewayClass"
    GROUP = GATEWAY_GROUP
    NAMESPACED = False

    metadata: ObjectMeta
    spec: GatewayClassSpec


@attrs.frozen(kw_only=True)
class RouteNamespaces:
    """Namespaces routes may attach from: ``Same`` (default), ``All`` or ``Selector``."""

    from_: str = "Same"
    selector: LabelSelector | None = None


@attrs.frozen(kw_only=True)
class RouteGroupKind:
    """A route kind a listener accepts."""

    group: str = GATEWAY_GROUP
    kind: str


@attrs.frozen(kw_only=True)
class AllowedRoutes:
    """Routes a listener accepts; ``kinds`` empty means every kind compatible with the protocol."""

    namespaces: RouteNamespaces = RouteNamespaces()
    kinds: tuple[RouteGroupKind, ...] = ()


@attrs.frozen(kw_only=True)
class GatewayTLSConfig:
    """A listener's TLS: ``Terminate`` (default) with certificates, or ``Passthrough``."""

    mode: str = "Terminate"
    certificate_refs: tuple[SecretObjectReference, ...] = ()
    options: Mapping[str, str] = map_field()


ListenerTLSConfig = GatewayTLSConfig
"""The name upstream uses since v1.4 for a listener's TLS settings."""


@attrs.frozen(kw_only=True)
class Listener:
    """A logical endpoint of a Gateway: name, port, protocol, hostname, TLS and the routes it admits."""

    name: str
    hostname: str | None = None
    port: int
    protocol: str
    tls: GatewayTLSConfig | None = None
    allowed_routes: AllowedRoutes = AllowedRoutes()


ListenerEntry = Listener
"""A ListenerSet's listener has the same shape as a Gateway's."""


@attrs.frozen(kw_only=True)
class GatewaySpecAddress:
    """A requested address; ``value`` may be omitted (the implementation picks one of ``type``)."""

    type: str = "IPAddress"
    value: str | None = None


@attrs.frozen(kw_only=True)
class LocalParametersReference:
    """Infrastructure parameters in the Gateway's namespace."""

    group: str
    kind: str
    name: str


@attrs.frozen(kw_only=True)
class GatewayInfrastructure:
    """Labels and annotations to put on the resources that implement the Gateway."""

    labels: Mapping[str, str] = map_field()
    annotations: Mapping[str, str] = map_field()
    parameters_ref: LocalParametersReference | None = None


@attrs.frozen(kw_only=True)
class ListenerNamespaces:
    """Namespaces ListenerSets may attach from: ``None`` (default), ``Same``, ``All``, ``Selector``."""

    from_: str = "None"
    selector: LabelSelector | None = None


@attrs.frozen(kw_only=True)
class AllowedListeners:
    """Which ListenerSets may attach listeners to a Gateway."""

    namespaces: ListenerNamespaces = ListenerNamespaces()


@attrs.frozen(kw_only=True)
class FrontendTLSValidation:
    """Client certificate validation: CA certificates and ``AllowValidOnly`` (default) or ``AllowInsecureFallback``."""

    ca_certificate_refs: tuple[ObjectReference, ...]
    mode: str = "AllowValidOnly"


@attrs.frozen(kw_only=True)
class TLSConfig:
    """Frontend TLS settings applied to a port (or every port)."""

    validation: FrontendTLSValidation | None = None


@attrs.frozen(kw_only=True)
class TLSPortConfig:
    """Frontend TLS settings for one port."""

    port: int
    tls: TLSConfig


@attrs.frozen(kw_only=True)
class FrontendTLSConfig:
    """Client-facing TLS settings: a default and per-port overrides."""

    default: TLSConfig
    per_port: tuple[TLSPortConfig, ...] = ()


@attrs.frozen(kw_only=True)
class GatewayBackendTLS:
    """Backend-facing TLS settings: the client certificate presented to backends."""

    client_certificate_ref: SecretObjectReference | None = None


@attrs.frozen(kw_only=True)
class GatewayTLSSettings:
    """A Gateway's ``spec.tls`` (frontend client validation, backend client certificate)."""

    frontend: FrontendTLSConfig | None = None
    backend: GatewayBackendTLS | None = None


@attrs.frozen(kw_only=True)
class GatewaySpec:
    """What a Gateway asks for."""

    gateway_class_name: str
    listeners: tuple[Listener, ...]
    addresses: tuple[GatewaySpecAddress, ...] = ()
    infrastructure: GatewayInfrastructure | None = None
    allowed_listeners: AllowedListeners | None = None
    tls: GatewayTLSSettings | None = None


@attrs.frozen(kw_only=True)
class Gateway(KubeObjectBase):
    """A Gateway: listeners bound to addresses, programmed by the controller of its class."""

    KIND = "Gateway"
    GROUP = GATEWAY_GROUP

    metadata: ObjectMeta
    spec: GatewaySpec


@attrs.frozen(kw_only=True)
class ParentGatewayReference:
    """The Gateway a ListenerSet adds its listeners to."""

    group: str = GATEWAY_GROUP
    kind: str = "Gateway"
    name: str
    namespace: str | None = None


@attrs.frozen(kw_only=True)
class ListenerSetSpec:
    """Listeners added to ``parent_ref``."""

    parent_ref: ParentGatewayReference
    listeners: tuple[Listener, ...]


@attrs.frozen(kw_only=True)
class ListenerSet(KubeObjectBase):
    """Extra listeners for a Gateway, owned by another namespace or team."""

    KIND = "ListenerSet"
    GROUP = GATEWAY_GROUP

    metadata: ObjectMeta
    spec: ListenerSetSpec
