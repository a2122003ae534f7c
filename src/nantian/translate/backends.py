"""Backend resolution: a backendRef -> a Service port -> an IR :class:`~nantian.ir.Cluster` of ready endpoints.

Reasons follow the Gateway API: ``InvalidKind`` (not a core Service), ``RefNotPermitted`` (cross-namespace without
a ReferenceGrant), ``BackendNotFound`` (no such Service or port), ``UnsupportedProtocol`` (the Service port speaks
something the route cannot carry).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from nantian.ir import AppProtocol, Cluster, Endpoint, UpstreamTls, WeightedCluster
from nantian.resources import (
    BackendRef,
    BackendTLSPolicy,
    ConfigMap,
    EndpointSlice,
    ObjectRef,
    ReferenceGrant,
    ResourceSet,
    Service,
    ServicePort,
)
from nantian.translate.policies import PolicyIndex
from nantian.translate.referencegrant import GrantIndex

__all__ = ["BackendResolver", "ClusterSpec", "Resolution", "ResolveKey"]

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


@attrs.frozen
class ClusterSpec:
    """Everything a cluster is made of but its endpoints (those come from the Service's EndpointSlices)."""

    name: str
    protocol: AppProtocol
    tls: UpstreamTls | None
    service: Service
    service_port: ServicePort | None
    port: int


ResolveKey = tuple[str, str, str, str | None, int | None, str, str, str | None, str | None]
"""(group, kind, name, namespace, port, route kind, route namespace, stream, client certificate)."""
_WeightedKey = tuple[str, str, str, str | None, int | None, int, str, str, str | None]


class _ClusterEntry:
    __slots__ = ("cluster", "slices", "spec")

    def __init__(self, spec: ClusterSpec, slices: tuple[EndpointSlice, ...], cluster: Cluster) -> None:
        self.spec, self.slices, self.cluster = spec, slices, cluster


class BackendResolver:
    """Resolves backendRefs of routes and builds the clusters they need (one per Service port and protocol).

    One resolver can serve successive translations (see :class:`~nantian.translate.Translator`):
    :meth:`begin` points it at the next ResourceSet and keeps every :class:`Resolution`,
    :class:`~nantian.ir.WeightedCluster` and :class:`~nantian.ir.Cluster` whose inputs did not change as the
    same object, so work memoized on those objects stays valid. :attr:`epoch` changes whenever a kept
    resolution changed. Resolutions nobody holds any more are dropped by :meth:`release`.
    """

    def __init__(
        self,
        resources: ResourceSet | None = None,
        grants: GrantIndex | None = None,
        policies: PolicyIndex | None = None,
    ) -> None:
        self._resolved: dict[ResolveKey, tuple[Resolution, ClusterSpec | None]] = {}
        self._weighted: dict[_WeightedKey, tuple[Resolution, WeightedCluster]] = {}
        self._clusters: dict[str, _ClusterEntry] = {}
        self._env: tuple[object, ...] | None = None
        self._slices_seen: tuple[EndpointSlice, ...] | None = None
        self._slices_changed = True
        self.epoch = 0
        """Changes whenever :meth:`begin` found a kept resolution changed."""
        self.recording: list[ResolveKey] | None = None
        """When a list, every resolution asked for is appended to it (what a compiled route depends on)."""
        empty = ResourceSet.from_objects(())
        self._resources = empty
        self._grants = GrantIndex(())
        self._policies = PolicyIndex((), empty)
        if resources is not None:
            self.begin(resources, grants or GrantIndex(()), policies or PolicyIndex((), resources))

    def begin(self, resources: ResourceSet, grants: GrantIndex, policies: PolicyIndex) -> None:
        """Resolve against ``resources`` from now on; re-check the kept resolutions if what they read changed."""
        self._resources, self._grants, self._policies = resources, grants, policies
        env = (
            resources.of_kind(Service),
            resources.of_kind(ReferenceGrant),
            resources.of_kind(BackendTLSPolicy),
            resources.of_kind(ConfigMap),
        )
        slices = resources.of_kind(EndpointSlice)
        self._slices_changed = slices != self._slices_seen
        self._slices_seen = slices
        if env == self._env:
            return
        self._env = env
        changed = False
        for key, (old, _) in list(self._resolved.items()):
            res, spec = self._resolve(key)
            if res == old:
                res = old
            else:
                changed = True
            self._resolved[key] = (res, spec)
        if changed:
            self.epoch += 1
            current = self._resolved
            self._weighted = {
                k: v for k, v in self._weighted.items() if current.get(_resolve_key(k), (None,))[0] is v[0]
            }

    def current(self, key: ResolveKey) -> Resolution | None:
        """The kept resolution of ``key`` (``None``: not resolved or dropped)."""
        found = self._resolved.get(key)
        return found[0] if found is not None else None

    def release(self, keys: Iterable[ResolveKey]) -> None:
        """Drop the resolutions of ``keys`` (no compiled route uses them any more)."""
        dropped = False
        for key in keys:
            if self._resolved.pop(key, None) is not None:
                dropped = True
        if dropped:
            current = self._resolved
            self._weighted = {k: v for k, v in self._weighted.items() if _resolve_key(k) in current}

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
        key: ResolveKey = (group, kind, name, namespace, port, route_kind, route_ns, stream, client_certificate)
        if self.recording is not None:
            self.recording.append(key)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = self._resolve(key)
        return found[0]

    def weighted(
        self, ref: BackendRef, route_kind: str, route_ns: str, client_certificate: str | None
    ) -> tuple[Resolution, WeightedCluster]:
        """Resolve a backendRef without filters straight to its :class:`WeightedCluster` (shared, cached)."""
        key: _WeightedKey = (
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
        elif self.recording is not None:
            self.recording.append(_resolve_key(key))
        return found

    def clusters(self) -> list[Cluster]:
        """The clusters of every kept resolution, reusing each cluster object whose inputs did not change."""
        specs: dict[str, ClusterSpec] = {}
        for _, spec in self._resolved.values():
            if spec is not None and spec.name not in specs:
                specs[spec.name] = spec
        kept: dict[str, _ClusterEntry] = {}
        for name, spec in specs.items():
            entry = self._clusters.get(name)
            if entry is None or (entry.spec is not spec and entry.spec != spec):
                entry = None
            elif self._slices_changed:
                slices = self._slices_for(spec)
                if slices != entry.slices:
                    entry = None
            if entry is None:
                slices = self._slices_for(spec)
                entry = _ClusterEntry(spec, slices, self._build(spec, slices))
            else:
                entry.spec = spec
            kept[name] = entry
        self._clusters = kept
        return [e.cluster for e in kept.values()]

    def ca_maps(self) -> dict[str, ConfigMap]:
        """CA ConfigMaps of the valid BackendTLSPolicies, by ``namespace/name``."""
        out: dict[str, ConfigMap] = {}
        for result in self._policies.results.values():
            if result.tls is not None:
                for cm in result.ca_maps:
                    out[f"{cm.metadata.namespace}/{cm.metadata.name}"] = cm
        return out

    def _resolve(self, key: ResolveKey) -> tuple[Resolution, ClusterSpec | None]:
        group, kind, name, namespace, port, route_kind, route_ns, stream, client_cert = key
        ns = namespace or route_ns
        what = f"backendRef {kind} {ns}/{name}"
        if (group or "") != "" or kind != "Service":
            return Resolution(None, "InvalidKind", f"{what}: only core Services are supported as backends"), None
        if not self._grants.permits(
            from_group=GROUP,
            from_kind=route_kind,
            from_ns=route_ns,
            to_group="",
            to_kind="Service",
            to_ns=ns,
            to_name=name,
        ):
            return Resolution(None, "RefNotPermitted", f"{what}: no ReferenceGrant in {ns} allows it"), None
        service = self._resources.get(ObjectRef("Service", ns, name))
        if not isinstance(service, Service):
            return Resolution(None, "BackendNotFound", f"{what} not found"), None
        if port is None:
            return Resolution(None, "BackendNotFound", f"{what}: port is required", (ns, name)), None
        sport = next((p for p in service.spec.ports if p.port == port), None)
        if sport is None and service.spec.type != "ExternalName":
            return Resolution(None, "BackendNotFound", f"{what} has no port {port}", (ns, name)), None
        want_proto = "UDP" if stream == "UDP" else "TCP"
        if sport is not None and (sport.protocol or "TCP") != want_proto:
            return Resolution(
                None,
                "UnsupportedProtocol",
                f"{what} port {port} is {sport.protocol}, {route_kind} needs {want_proto}",
                (ns, name),
            ), None
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
                    message = f"{what}: BackendTLSPolicy {policy.policy.ref} is invalid"
                    return Resolution(None, "ResolvedRefs", message, (ns, name)), None
                tls = policy.tls
                if client_cert is not None:
                    tls = attrs.evolve(tls, client_certificate=client_cert)
        cluster_name = f"{ns}/{name}:{port}"
        if stream is not None:
            cluster_name += f"/{stream.lower()}"
        elif protocol != declared:
            cluster_name += f"/{protocol.value}"
        if tls is not None and tls.client_certificate is not None:
            cluster_name += f"@{tls.client_certificate}"
        spec = ClusterSpec(
            name=cluster_name, protocol=protocol, tls=tls, service=service, service_port=sport, port=port
        )
        return Resolution(cluster_name, service=(ns, name)), spec

    def _slices_for(self, spec: ClusterSpec) -> tuple[EndpointSlice, ...]:
        meta = spec.service.metadata
        return self._resources.endpoint_slices_for(meta.namespace, meta.name)

    def _build(self, spec: ClusterSpec, slices: tuple[EndpointSlice, ...]) -> Cluster:
        return Cluster(
            name=spec.name,
            protocol=spec.protocol,
            endpoints=_endpoints(spec.service, spec.service_port, spec.port, slices),
            tls=spec.tls,
        )


def _resolve_key(key: _WeightedKey) -> ResolveKey:
    group, kind, name, namespace, port, _, route_kind, route_ns, client_certificate = key
    return (group, kind, name, namespace, port, route_kind, route_ns, None, client_certificate)


def _endpoints(
    service: Service, sport: ServicePort | None, port: int, slices: tuple[EndpointSlice, ...]
) -> tuple[Endpoint, ...]:
    if not 1 <= port <= 65535:
        return ()
    if service.spec.type == "ExternalName" and service.spec.external_name:
        return (Endpoint(address=service.spec.external_name, port=port),)
    assert sport is not None
    out: set[tuple[str, int]] = set()
    for sl in slices:
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
