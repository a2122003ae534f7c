"""Object identity and metadata shared by every kind: :class:`ObjectRef`, :class:`ObjectMeta`, label selectors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import attrs

__all__ = [
    "EMPTY_MAP",
    "FrozenMap",
    "KubeObjectBase",
    "LabelSelector",
    "LabelSelectorRequirement",
    "ObjectMeta",
    "ObjectRef",
    "freeze",
    "map_field",
]

GATEWAY_GROUP = "gateway.networking.k8s.io"

K = TypeVar("K")
V = TypeVar("V")


class FrozenMap(Mapping[K, V]):
    """An immutable, hashable mapping: what a Kubernetes map field (labels, annotations, data) becomes."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data) if data else {}
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


EMPTY_MAP: FrozenMap[str, str] = FrozenMap()
"""The shared empty map, default of every map field."""


def freeze(value: Mapping[K, V]) -> FrozenMap[K, V]:
    """``value`` as a :class:`FrozenMap` (itself if it already is one)."""
    return value if isinstance(value, FrozenMap) else FrozenMap(value)


def map_field() -> Any:
    """An attrs field for a map: empty by default, frozen whatever mapping it is given."""
    return attrs.field(factory=FrozenMap, converter=freeze)


@attrs.frozen(order=True)
class ObjectRef:
    """Identity of an object: kind, namespace (``""`` for cluster-scoped kinds) and name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@attrs.frozen(kw_only=True)
class ObjectMeta:
    """The part of ``metadata`` nantian uses. Unknown metadata fields are ignored."""

    name: str
    namespace: str = ""
    generation: int = 1
    labels: Mapping[str, str] = map_field()
    annotations: Mapping[str, str] = map_field()
    creation_timestamp: str | None = None
    """RFC 3339, as written."""
    uid: str | None = None
    resource_version: str | None = None


@attrs.frozen(kw_only=True)
class LabelSelectorRequirement:
    """One ``matchExpressions`` entry: ``key``, operator ``In``/``NotIn``/``Exists``/``DoesNotExist``, ``values``."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class LabelSelector:
    """A Kubernetes label selector. The empty selector matches everything."""

    match_labels: Mapping[str, str] = map_field()
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy every term. An unknown operator matches nothing (as the API server refuses it)."""
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "In":
                ok = present and labels[req.key] in req.values
            elif req.operator == "NotIn":
                ok = not present or labels[req.key] not in req.values
            elif req.operator == "Exists":
                ok = present
            elif req.operator == "DoesNotExist":
                ok = not present
            else:
                ok = False
            if not ok:
                return False
        return True


class KubeObjectBase:
    """Mixin of every typed object: ``KIND``, ``GROUP``, ``NAMESPACED`` and the :attr:`ref` property."""

    __slots__ = ()

    KIND: ClassVar[str]
    GROUP: ClassVar[str]
    NAMESPACED: ClassVar[bool] = True
    metadata: ObjectMeta

    @property
    def ref(self) -> ObjectRef:
        """``ObjectRef(KIND, namespace, name)``."""
        return ObjectRef(self.KIND, self.metadata.namespace, self.metadata.name)
