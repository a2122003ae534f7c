"""Backend resolution: a backendRef -> a Service port -> an IR :class:`~nantian.ir.Cluster` of ready endpoints.

Reasons follow the Gateway API: ``InvalidKind`` (not a core Service), ``RefNotPermitted`` (cross-namespace without
a ReferenceGrant), ``BackendNotFound`` (no such Service or port), ``UnsupportedProtocol`` (the Service port speaks
something the route cannot carry).
"""

from __future__ import annotations

from typing import Any

import attrs

from nantian.ir import AppProtocol, Cluster, Endpoint, UpstreamTls, WeightedCluster
from nantian.resources import BackendRef, EndpointSlice, ObjectRef, ResourceSet, Service, ServicePort
from nantian.translate.policies import PolicyIndex
from nantian.translate.referencegrant import GrantIndex

__all__ = ["BackendResolver", "Resolution"]

GROUP = "gateway.networking.k8s.io"

_APP_PROTOCOLS = {
    "kubernetes.io/h2c": AppProtocol.H2C,
    "h2c": AppProtocol.H2C,
    "kubernetes.io/ws": AppProtocol.WEBSOCKET,
}


@attrs.frozen
class Resolution:
    """A resolved backend (``cluster`` name) or the reason it is not usable (``cluster`` ``None``)."""

    cluster: str | None
    reason: str = "ResolvedRefs"
    message: str = ""
    service: tuple[str, str] | None = None
    """(namespace, name) of the Service, when one was found; BackendTLSPolicy ancestors use it."""


class BackendResolver:
    """Resolves backendRefs of routes and collects the clusters they need (one per Service port and protocol).

    :param client_certificates: Gateway ``namespace/name`` -> IR secret its TLS origination presents.
    """

    def __init__(self, resources: ResourceSet, grants: GrantIndex, policies: PolicyIndex) -> None:
        self._resources = resources
        self._grants = grants
        self._policies = policies
        self.clusters: dict[str, Cluster] = {}
        self.ca_maps: dict[str, Any] = {}
        self._cache: dict[tuple[Any, ...], Resolution] = {}
        self._weighted: dict[tuple[Any, ...], tuple[Resolution, WeightedCluster]] = {}

    def resolve(
        self,
        *,
        group: str,
        kind: str,
        name: str,
        namespace: str | None,
        port: int | None,
        route_kind: str,
        route_ns: str,
        stream: str | None = None,
        client_certificate: str | None = None,
    ) -> Resolution:
        """Resolve one reference from a ``route_kind`` in ``route_ns``; ``stream`` is ``"TCP"``/``"UDP"`` for
        stream routes (TLS routes forward TCP)."""
        key = (group, kind, name, namespace, port, route_kind, route_ns, stream, client_certificate)
        found = self._cache.get(key)
        if found is None:
            found = self._resolve(key)
            self._cache[key] = found
        return found

    def weighted(
        self, ref: BackendRef, route_kind: str, route_ns: str, client_certificate: str | None
    ) -> tuple[Resolution, WeightedCluster]:
        """Resolve a backendRef without filters straight to its :class:`WeightedCluster` (shared, cached)."""
        key = (
            ref.group,
            ref.kind,
            ref.name,
            ref.namespace,
            ref.port,
            ref.weight,
            route_kind,
            route_ns,
            client_certificate,
        )
        found = self._weighted.get(key)
        if found is None:
            res = self.resolve(
                group=ref.group,
                kind=ref.kind,
                name=ref.name,
                namespace=ref.namespace,
                port=ref.port,
                route_kind=route_kind,
                route_ns=route_ns,
                client_certificate=client_certificate,
            )
            found = (res, WeightedCluster(cluster=res.cluster, weight=ref.weight if ref.weight > 0 else 0))
            self._weighted[key] = found
        return found

    def _resolve(self, key: tuple[Any, ...]) -> Resolution:
        group, kind, name, namespace, port, route_kind, route_ns, stream, client_cert = key
        ns = namespace or route_ns
        what = f"backendRef {kind} {ns}/{name}"
        if (group or "") != "" or kind != "Service":
            return Resolution(None, "InvalidKind", f"{what}: only core Services are supported as backends")
        if not self._grants.permits(
            from_group=GROUP,
            from_kind=route_kind,
            from_ns=route_ns,
            to_group="",
            to_kind="Service",
            to_ns=ns,
            to_name=name,
        ):
            return Resolution(None, "RefNotPermitted", f"{what}: no ReferenceGrant in {ns} allows it")
        service = self._resources.get(ObjectRef("Service", ns, name))
        if not isinstance(service, Service):
            return Resolution(None, "BackendNotFound", f"{what} not found")
        if port is None:
            return Resolution(None, "BackendNotFound", f"{what}: port is required", (ns, name))
        sport = next((p for p in service.spec.ports if p.port == port), None)
        if sport is None and service.spec.type != "ExternalName":
            return Resolution(None, "BackendNotFound", f"{what} has no port {port}", (ns, name))
        want_proto = "UDP" if stream == "UDP" else "TCP"
        if sport is not None and (sport.protocol or "TCP") != want_proto:
            return Resolution(
                None,
                "UnsupportedProtocol",
                f"{what} port {port} is {sport.protocol}, {route_kind} needs {want_proto}",
                (ns, name),
            )
        if stream == "UDP":
            protocol = AppProtocol.UDP
        elif stream == "TCP":
            protocol = AppProtocol.TCP
        else:
            protocol = _APP_PROTOCOLS.get((sport.app_protocol or "") if sport else "", AppProtocol.HTTP1)
        declared = protocol
        if route_kind == "GRPCRoute" and stream is None:
            protocol = AppProtocol.H2C  # gRPC needs HTTP/2 whatever the Service port declares
        tls: UpstreamTls | None = None
        if stream is None:
            policy = self._policies.for_port(ns, name, sport.name if sport else None)
            if policy is not None:
                if policy.tls is None:
                    return Resolution(
                        None, "ResolvedRefs", f"{what}: BackendTLSPolicy {policy.policy.ref} is invalid", (ns, name)
                    )
                tls = policy.tls
                for cm in policy.ca_maps:
                    self.ca_maps[f"{cm.metadata.namespace}/{cm.metadata.name}"] = cm
                if client_cert is not None:
                    tls = attrs.evolve(tls, client_certificate=client_cert)
        cluster_name = f"{ns}/{name}:{port}"
        if stream is not None:
            cluster_name += f"/{stream.lower()}"
        elif protocol != declared:
            cluster_name += f"/{protocol.value}"
        if tls is not None and tls.client_certificate is not None:
            cluster_name += f"@{tls.client_certificate}"
        if cluster_name not in self.clusters:
            self.clusters[cluster_name] = Cluster(
                name=cluster_name, protocol=protocol, endpoints=self._endpoints(service, sport, port), tls=tls
            )
        return Resolution(cluster_name, service=(ns, name))

    def _endpoints(self, service: Service, sport: ServicePort | None, port: int) -> tuple[Endpoint, ...]:
        if not 1 <= port <= 65535:
            return ()
        if service.spec.type == "ExternalName" and service.spec.external_name:
            return (Endpoint(address=service.spec.external_name, port=port),)
        assert sport is not None
        out: set[tuple[str, int]] = set()
        for sl in self._resources.endpoint_slices_for(service.metadata.namespace, service.metadata.name):
            if not isinstance(sl, EndpointSlice) or sl.address_type not in ("IPv4", "IPv6"):
                continue
            target = _slice_port(sl, sport)
            if target is None or not 1 <= target <= 65535:
                continue
            for ep in sl.endpoints:
                if ep.conditions.ready is False:
                    continue
                for addr in ep.addresses:
                    out.add((addr, target))
        return tuple(Endpoint(address=a, port=p) for a, p in sorted(out))


def _slice_port(sl: EndpointSlice, sport: ServicePort) -> int | None:
    """The endpoint port serving ``sport``: slice ports are matched by Service port name."""
    want = sport.name or ""
    for p in sl.ports:
        if (p.name or "") == want and p.port is not None:
            return p.port
    if not sl.ports and isinstance(sport.target_port, int):
        return sport.target_port
    return None
