"""Core Kubernetes kinds nantian reads: Service, EndpointSlice, Secret, ConfigMap, Namespace."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from nantian.resources.meta import KubeObjectBase, ObjectMeta, map_field

__all__ = [
    "ConfigMap",
    "Endpoint",
    "EndpointConditions",
    "EndpointPort",
    "EndpointSlice",
    "Namespace",
    "Secret",
    "Service",
    "ServicePort",
    "ServiceSpec",
]


@attrs.frozen(kw_only=True)
class ServicePort:
    """One port of a Service. ``target_port`` is a number or a container port name."""

    name: str | None = None
    protocol: str = "TCP"
    port: int
    target_port: int | str | None = None
    app_protocol: str | None = None
    node_port: int | None = None


@attrs.frozen(kw_only=True)
class ServiceSpec:
    """The parts of a Service nantian uses."""

    type: str = "ClusterIP"
    ports: tuple[ServicePort, ...] = ()
    selector: Mapping[str, str] = map_field()
    cluster_ip: str | None = None
    cluster_ips: tuple[str, ...] = ()
    external_name: str | None = None


@attrs.frozen(kw_only=True)
class Service(KubeObjectBase):
    """A Service: its ports; its endpoints are the EndpointSlices labelled with its name."""

    KIND = "Service"
    GROUP = ""

    metadata: ObjectMeta
    spec: ServiceSpec = ServiceSpec()


@attrs.frozen(kw_only=True)
class EndpointConditions:
    """Readiness of an endpoint; ``None`` (unknown) counts as ready for ``ready``."""

    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


@attrs.frozen(kw_only=True)
class Endpoint:
    """One backend instance: its addresses and conditions."""

    addresses: tuple[str, ...]
    conditions: EndpointConditions = EndpointConditions()
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None


@attrs.frozen(kw_only=True)
class EndpointPort:
    """A port every endpoint of the slice serves; ``name`` matches the Service port's name."""

    name: str | None = None
    port: int | None = None
    protocol: str = "TCP"
    app_protocol: str | None = None


@attrs.frozen(kw_only=True)
class EndpointSlice(KubeObjectBase):
    """Endpoints of a Service (label ``kubernetes.io/service-name``); ``discovery.k8s.io/v1``."""

    KIND = "EndpointSlice"
    GROUP = "discovery.k8s.io"

    metadata: ObjectMeta
    address_type: str
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()


@attrs.frozen(kw_only=True)
class Secret(KubeObjectBase):
    """A Secret; ``data`` values are decoded bytes (``stringData`` merged in, as the API server does)."""

    KIND = "Secret"
    GROUP = ""

    metadata: ObjectMeta
    type: str = "Opaque"
    data: Mapping[str, bytes] = map_field()


@attrs.frozen(kw_only=True)
class ConfigMap(KubeObjectBase):
    """A ConfigMap: text ``data`` and decoded ``binary_data``."""

    KIND = "ConfigMap"
    GROUP = ""

    metadata: ObjectMeta
    data: Mapping[str, str] = map_field()
    binary_data: Mapping[str, bytes] = map_field()


@attrs.frozen(kw_only=True)
class Namespace(KubeObjectBase):
    """A Namespace (its labels matter for ``allowedRoutes`` selectors). Cluster-scoped."""

    KIND = "Namespace"
    GROUP = ""
    NAMESPACED = False

    metadata: ObjectMeta
