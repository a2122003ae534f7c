"""A complete configuration for the data plane, with a version derived from its content."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable

import attrs

from nantian.ir._convert import dumps
from nantian.ir.cluster import Cluster
from nantian.ir.listener import Listener
from nantian.ir.secret import Secret

__all__ = ["Resource", "ResourceKey", "ResourceType", "Snapshot", "resource_type"]


class ResourceType(enum.Enum):
    """The kinds of IR resource a snapshot holds; deltas name resources by (type, name)."""

    LISTENER = "listener"
    CLUSTER = "cluster"
    SECRET = "secret"


Resource = Listener | Cluster | Secret
ResourceKey = tuple[ResourceType, str]

_TYPES: dict[type, ResourceType] = {
    Listener: ResourceType.LISTENER,
    Cluster: ResourceType.CLUSTER,
    Secret: ResourceType.SECRET,
}
CLASSES: dict[ResourceType, type[Resource]] = {t: c for c, t in _TYPES.items()}  # type: ignore[misc]


def resource_type(resource: Resource) -> ResourceType:
    return _TYPES[type(resource)]


def _digest(resources: Iterable[Resource]) -> str:
    h = hashlib.sha256()
    for r in resources:
        h.update(resource_type(r).value.encode())
        h.update(b"\0")
        h.update(dumps(r))
        h.update(b"\n")
    return h.hexdigest()[:16]


@attrs.frozen(kw_only=True)
class Snapshot:
    """Listeners, clusters and secrets, each sorted by name. Build with :meth:`build` to get the version.

    ``version`` hashes the canonical encoding of every resource, so the same configuration always has the
    same version and an unchanged rebuild causes no push.
    """

    listeners: tuple[Listener, ...] = ()
    clusters: tuple[Cluster, ...] = ()
    secrets: tuple[Secret, ...] = ()
    version: str = ""

    @classmethod
    def build(
        cls,
        listeners: Iterable[Listener] = (),
        clusters: Iterable[Cluster] = (),
        secrets: Iterable[Secret] = (),
    ) -> Snapshot:
        ls = tuple(sorted(listeners, key=lambda r: r.name))
        cs = tuple(sorted(clusters, key=lambda r: r.name))
        ss = tuple(sorted(secrets, key=lambda r: r.name))
        return cls(listeners=ls, clusters=cs, secrets=ss, version=_digest((*ls, *cs, *ss)))

    @classmethod
    def from_resources(cls, resources: Iterable[Resource]) -> Snapshot:
        rs = list(resources)
        return cls.build(
            (r for r in rs if isinstance(r, Listener)),
            (r for r in rs if isinstance(r, Cluster)),
            (r for r in rs if isinstance(r, Secret)),
        )

    def resources(self) -> dict[ResourceKey, Resource]:
        """Every resource keyed by (type, name)."""
        out: dict[ResourceKey, Resource] = {}
        all_resources: tuple[Resource, ...] = (*self.listeners, *self.clusters, *self.secrets)
        for r in all_resources:
            out[(resource_type(r), r.name)] = r
        return out

    def problems(self) -> list[str]:
        """What makes this snapshot inconsistent: duplicate names, references to missing clusters or secrets."""
        found: list[str] = []
        clusters = {c.name for c in self.clusters}
        secrets = {s.name for s in self.secrets}
        for kind, items in (("listener", self.listeners), ("cluster", self.clusters), ("secret", self.secrets)):
            names = [r.name for r in items]
            if len(names) != len(set(names)):
                found.append(f"duplicate {kind} names")
        for lst in self.listeners:
            for cert in lst.certificates:
                if cert.secret not in secrets:
                    found.append(f"listener {lst.name}: secret {cert.secret} missing")
            wcs = [b for vh in lst.virtual_hosts for r in vh.routes for b in r.backends]
            wcs += [b for sr in lst.stream_routes for b in sr.backends]
            mirrors = [m.cluster for vh in lst.virtual_hosts for r in vh.routes for m in r.mirrors]
            for name in [b.cluster for b in wcs if b.cluster is not None] + mirrors:
                if name not in clusters:
                    found.append(f"listener {lst.name}: cluster {name} missing")
        for c in self.clusters:
            if c.tls is not None:
                for s in (*c.tls.ca_secrets, *filter(None, [c.tls.client_certificate])):
                    if s not in secrets:
                        found.append(f"cluster {c.name}: secret {s} missing")
        return sorted(set(found))

    def consistent(self) -> bool:
        return not self.problems()
