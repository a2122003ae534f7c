"""A complete configuration for the data plane, with a version derived from its content."""

from __future__ import annotations

import enum
import hashlib
import threading
import weakref
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

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
_TAGS: dict[type, bytes] = {c: t.value.encode() + b"\0" for c, t in _TYPES.items()}


def resource_type(resource: Resource) -> ResourceType:
    return _TYPES[type(resource)]


V = TypeVar("V")


class _Ref(weakref.ref):  # type: ignore[type-arg]
    """A weak reference carrying its cache key and the cached value (one object per entry)."""

    __slots__ = ("key", "value")
    key: int
    value: Any


class _IdentityCache(Generic[V]):
    """Values computed from immutable (frozen) objects, keyed by object identity.

    An entry goes when its object is collected (a weak reference's callback), and the oldest entries go
    first once ``maxsize`` is reached, so the cache never keeps an object alive nor grows without bound.
    """

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._entries: dict[int, _Ref] = {}

    def get(self, obj: object) -> V | None:
        ref = self._entries.get(id(obj))
        if ref is not None and ref() is obj:
            value: V = ref.value
            return value
        return None

    def put(self, obj: object, value: V) -> None:
        ref = _Ref(obj, self._forget)
        ref.key, ref.value = id(obj), value
        entries = self._entries
        while len(entries) >= self._maxsize:
            try:
                del entries[next(iter(entries))]
            except (StopIteration, RuntimeError, KeyError):  # another thread changed the cache meanwhile
                break
        entries[ref.key] = ref

    def _forget(self, ref: _Ref) -> None:
        # Without a lock: at worst a racing put() for a new object at the same address loses its entry (a miss).
        if self._entries.get(ref.key) is ref:
            self._entries.pop(ref.key, None)

    def __len__(self) -> int:
        return len(self._entries)


_ENCODED: _IdentityCache[bytes] = _IdentityCache(1 << 16)
"""Canonical encoding of each top-level resource."""
_ENCODED_VHOSTS: _IdentityCache[bytes] = _IdentityCache(1 << 18)
"""Canonical encoding of each virtual host, spliced into its listener's encoding."""
_VHOSTS_KEY = b'"virtualHosts":[]'


def _encode_listener(listener: Listener) -> bytes:
    """``dumps(listener)``, built from the cached encodings of its virtual hosts.

    A list of dictionaries encodes as ``[`` + the items' own canonical encodings joined by ``,`` + ``]`` (keys are
    sorted at every level), so the splice gives exactly the bytes of a whole encoding.
    """
    if not listener.virtual_hosts:
        return dumps(listener)
    head = dumps(attrs.evolve(listener, virtual_hosts=()))
    parts = head.split(_VHOSTS_KEY)
    if len(parts) != 2:  # cannot happen with the IR's fields; stay correct if it ever does
        return dumps(listener)
    hosts: list[bytes] = []
    for vh in listener.virtual_hosts:
        data = _ENCODED_VHOSTS.get(vh)
        if data is None:
            data = dumps(vh)
            _ENCODED_VHOSTS.put(vh, data)
        hosts.append(data)
    return b"".join((parts[0], b'"virtualHosts":[', b",".join(hosts), b"]", parts[1]))


def encoded(resource: Resource) -> bytes:
    """``nantian.ir.dumps(resource)``, cached per resource object (IR values are immutable)."""
    data = _ENCODED.get(resource)
    if data is None:
        data = _encode_listener(resource) if isinstance(resource, Listener) else dumps(resource)
        _ENCODED.put(resource, data)
    return data


@attrs.frozen(eq=False)
class _Chain:
    """The resources of one digest (weakly: a chain never keeps a snapshot alive) and the hash state after each."""

    resources: tuple[weakref.ref[Resource], ...]
    states: tuple[Any, ...]


_CHAINS: list[_Chain] = []
_CHAINS_KEPT = 2
_CHAINS_LOCK = threading.Lock()


def _common_prefix(chain: tuple[weakref.ref[Resource], ...], resources: tuple[Resource, ...]) -> int:
    n = min(len(chain), len(resources))
    i = 0
    while i < n and chain[i]() is resources[i]:
        i += 1
    return i


def _digest(resources: tuple[Resource, ...]) -> str:
    """sha256 over ``type NUL encoding LF`` of every resource, in order, as 16 hex digits.

    Hashing resumes from the state after the longest prefix of identical resource objects shared with one
    of the last digests, so a change near the end of a large snapshot re-hashes only what follows it.
    """
    with _CHAINS_LOCK:
        chains = list(_CHAINS)
    best: _Chain | None = None
    shared = 0
    for chain in chains:
        n = _common_prefix(chain.resources, resources)
        if n > shared:
            best, shared = chain, n
    states: list[Any] = list(best.states[:shared]) if best is not None else []
    refs: list[weakref.ref[Resource]] = list(best.resources[:shared]) if best is not None else []
    h = states[-1].copy() if states else hashlib.sha256()
    for r in resources[shared:]:
        h.update(_TAGS[type(r)])
        h.update(encoded(r))
        h.update(b"\n")
        states.append(h.copy())
        refs.append(weakref.ref(r))
    with _CHAINS_LOCK:
        if best is not None and best in _CHAINS:
            _CHAINS.remove(best)
        _CHAINS.append(_Chain(tuple(refs), tuple(states)))
        del _CHAINS[:-_CHAINS_KEPT]
    return h.hexdigest()[:16]


@attrs.frozen(kw_only=True)
class Snapshot:
    """Listeners, clusters and secrets, each sorted by name. Build with :meth:`build` to get the version.

    ``version`` hashes the canonical encoding of every resource, so the same configuration always has the
    same version and an unchanged rebuild causes no push. Building again from mostly the same resource objects
    is cheap: encodings are cached per object, and hashing resumes after the longest unchanged prefix.
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
                wanted = (cert.secret, *(cert.client_validation.ca_secrets if cert.client_validation else ()))
                for name in wanted:
                    if name not in secrets:
                        found.append(f"listener {lst.name}: secret {name} missing")
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
