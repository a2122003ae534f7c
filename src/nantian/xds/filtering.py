"""Per-node views of a snapshot: a data plane serving some Gateways gets only what those need. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from nantian.ir import Cluster, Listener, Snapshot

__all__ = ["clusters_of", "for_gateways", "secrets_of"]


def clusters_of(listener: Listener) -> set[str]:
    """Names of the clusters ``listener`` routes to or mirrors to."""
    names: set[str] = set()
    for vh in listener.virtual_hosts:
        for route in vh.routes:
            names.update(b.cluster for b in route.backends if b.cluster is not None)
            names.update(m.cluster for m in route.mirrors)
    for sr in listener.stream_routes:
        names.update(b.cluster for b in sr.backends if b.cluster is not None)
    return names


def secrets_of(listeners: Iterable[Listener], clusters: Iterable[Cluster]) -> set[str]:
    """Names of the secrets the listeners (certificates, client CAs) and clusters (upstream TLS) use."""
    names: set[str] = set()
    for lst in listeners:
        for cert in lst.certificates:
            names.add(cert.secret)
            if cert.client_validation is not None:
                names.update(cert.client_validation.ca_secrets)
    for cluster in clusters:
        if cluster.tls is not None:
            names.update(cluster.tls.ca_secrets)
            if cluster.tls.client_certificate is not None:
                names.add(cluster.tls.client_certificate)
    return names


def for_gateways(snapshot: Snapshot, gateways: Iterable[str]) -> Snapshot:
    """The part of ``snapshot`` that serves ``gateways`` (``namespace/name``); every Gateway when empty.

    The result is a snapshot of its own, with its own content version: the listeners of those Gateways,
    and only the clusters and secrets they reference.
    """
    wanted = frozenset(gateways)
    if not wanted:
        return snapshot
    listeners = [lst for lst in snapshot.listeners if lst.gateway in wanted]
    cluster_names = set().union(*(clusters_of(lst) for lst in listeners)) if listeners else set()
    clusters = [c for c in snapshot.clusters if c.name in cluster_names]
    secret_names = secrets_of(listeners, clusters)
    secrets = [s for s in snapshot.secrets if s.name in secret_names]
    return Snapshot.build(listeners, clusters, secrets)
