"""ResourceSet: an immutable, indexed collection of objects, cheap to change by one object."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar, cast, overload

import attrs

from nantian.errors import ParseError
from nantian.resources._convert import converter
from nantian.resources.core import EndpointSlice, Namespace
from nantian.resources.kinds import KubeObject, TypedObject, UnknownObject
from nantian.resources.meta import ObjectRef

__all__ = ["SERVICE_NAME_LABEL", "ResourceSet", "ResourceSetDiff"]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
"""The EndpointSlice label naming its Service."""

T = TypeVar("T", bound=TypedObject)
_EMPTY_RAW: Mapping[ObjectRef, Mapping[str, Any]] = {}


def _sort_key(obj: KubeObject) -> tuple[str, str]:
    return (obj.metadata.namespace, obj.metadata.name)


class _KindIndex:
    """Objects of one kind and lazily built views of them. Never mutated once built (caches aside)."""

    __slots__ = ("_by_namespace", "_by_service", "_sorted", "_typed", "objects", "raw")

    def __init__(self, objects: dict[ObjectRef, KubeObject], raw: dict[ObjectRef, Mapping[str, Any]]) -> None:
        self.objects = objects
        self.raw = raw
        self._sorted: tuple[KubeObject, ...] | None = None
        self._by_namespace: dict[str, tuple[KubeObject, ...]] | None = None
        self._by_service: dict[tuple[str, str], tuple[EndpointSlice, ...]] | None = None
        self._typed: tuple[type, tuple[Any, ...]] | None = None

    def sorted(self) -> tuple[KubeObject, ...]:
        if self._sorted is None:
            self._sorted = tuple(sorted(self.objects.values(), key=_sort_key))
        return self._sorted

    def typed(self, cls: type[T]) -> tuple[T, ...]:
        """The sorted objects that are ``cls`` instances (not UnknownObjects of an unserved version)."""
        if self._typed is None or self._typed[0] is not cls:
            objs = self.sorted()
            typed = tuple(obj for obj in objs if isinstance(obj, cls))
            self._typed = (cls, objs if len(typed) == len(objs) else typed)
        return cast("tuple[T, ...]", self._typed[1])

    def in_namespace(self, namespace: str) -> tuple[KubeObject, ...]:
        if self._by_namespace is None:
            groups: dict[str, list[KubeObject]] = {}
            for obj in self.sorted():
                groups.setdefault(obj.metadata.namespace, []).append(obj)
            self._by_namespace = {ns: tuple(objs) for ns, objs in groups.items()}
        return self._by_namespace.get(namespace, ())

    def by_service(self, namespace: str, service: str) -> tuple[EndpointSlice, ...]:
        if self._by_service is None:
            groups: dict[tuple[str, str], list[EndpointSlice]] = {}
            for obj in self.sorted():
                label = obj.metadata.labels.get(SERVICE_NAME_LABEL)
                if isinstance(obj, EndpointSlice) and label is not None:
                    groups.setdefault((obj.metadata.namespace, label), []).append(obj)
            self._by_service = {key: tuple(slices) for key, slices in groups.items()}
        return self._by_service.get((namespace, service), ())

    def changed(self, ref: ObjectRef, obj: KubeObject | None, raw: Mapping[str, Any] | None) -> _KindIndex:
        """A new index with ``ref`` set to ``obj`` (or removed when ``None``).

        The sorted and by-namespace views already built are carried over by one bisect and one copy,
        not rebuilt, so a change costs O(objects of this kind) in C-level copies and no sort.
        """
        old_obj = self.objects.get(ref)
        objects = dict(self.objects)
        raws = dict(self.raw)
        if obj is None:
            objects.pop(ref, None)
        else:
            objects[ref] = obj
        if raw is None:
            raws.pop(ref, None)
        else:
            raws[ref] = raw
        new = _KindIndex(objects, raws)
        if self._sorted is not None:
            key = (ref.namespace, ref.name)
            new._sorted = _replaced(self._sorted, key, old_obj is not None, obj)
            if self._by_namespace is not None:
                by_namespace = dict(self._by_namespace)
                updated = _replaced(by_namespace.get(ref.namespace, ()), key, old_obj is not None, obj)
                if updated:
                    by_namespace[ref.namespace] = updated
                else:
                    by_namespace.pop(ref.namespace, None)
                new._by_namespace = by_namespace
        return new


def _replaced(
    objs: tuple[KubeObject, ...], key: tuple[str, str], present: bool, obj: KubeObject | None
) -> tuple[KubeObject, ...]:
    """``objs`` (sorted by namespace, name) with the object at ``key`` replaced, inserted or removed."""
    i = bisect.bisect_left(objs, key, key=_sort_key)
    tail = objs[i + 1 :] if present else objs[i:]
    return (*objs[:i], obj, *tail) if obj is not None else (*objs[:i], *tail)


_NO_KIND = _KindIndex({}, {})


@attrs.frozen
class ResourceSetDiff:
    """What changed from one ResourceSet to another, as sorted refs."""

    added: tuple[ObjectRef, ...] = ()
    removed: tuple[ObjectRef, ...] = ()
    changed: tuple[ObjectRef, ...] = ()

    @property
    def refs(self) -> tuple[ObjectRef, ...]:
        """Every ref added, removed or changed, sorted."""
        return tuple(sorted((*self.added, *self.removed, *self.changed)))

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def __str__(self) -> str:
        return f"added={len(self.added)} removed={len(self.removed)} changed={len(self.changed)}"


class ResourceSet:
    """An immutable, indexed set of objects keyed by :class:`ObjectRef`, plus the documents that failed to parse.

    :meth:`with_object` and :meth:`without` copy only the index of the affected kind; every other kind
    (and its cached views) is shared with the original set.
    """

    __slots__ = ("_errors", "_kinds", "_len")

    def __init__(self, kinds: dict[str, _KindIndex], errors: tuple[ParseError, ...]) -> None:
        self._kinds = kinds
        self._errors = errors
        self._len = sum(len(index.objects) for index in kinds.values())

    @classmethod
    def from_objects(
        cls,
        objs: Iterable[KubeObject],
        *,
        raw: Mapping[ObjectRef, Mapping[str, Any]] = _EMPTY_RAW,
        errors: Iterable[ParseError] = (),
    ) -> ResourceSet:
        """A set of ``objs`` (a later object with the same ref replaces an earlier one).

        :param raw: The documents as read, by ref (see :meth:`raw`).
        :param errors: Documents that failed to parse, kept to be reported.
        """
        objects: dict[str, dict[ObjectRef, KubeObject]] = {}
        raws: dict[str, dict[ObjectRef, Mapping[str, Any]]] = {}
        for obj in objs:
            ref = obj.ref
            objects.setdefault(ref.kind, {})[ref] = obj
            doc = raw.get(ref)
            if doc is not None:
                raws.setdefault(ref.kind, {})[ref] = doc
        kinds = {kind: _KindIndex(objs_of_kind, raws.get(kind, {})) for kind, objs_of_kind in objects.items()}
        return cls(kinds, tuple(errors))

    # --- reading -------------------------------------------------------------------------------
    def get(self, ref: ObjectRef) -> KubeObject | None:
        """The object ``ref`` names, or ``None``."""
        return self._kinds.get(ref.kind, _NO_KIND).objects.get(ref)

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, ObjectRef) and self.get(ref) is not None

    @overload
    def of_kind(self, kind: type[T]) -> tuple[T, ...]: ...
    @overload
    def of_kind(self, kind: str) -> tuple[KubeObject, ...]: ...
    def of_kind(self, kind: type[T] | str) -> tuple[T, ...] | tuple[KubeObject, ...]:
        """Objects of ``kind`` (a class, or a kind name) sorted by (namespace, name).

        Given a class, only instances of it are returned (not an :class:`UnknownObject` of an unserved version).
        """
        if isinstance(kind, str):
            return self._kinds.get(kind, _NO_KIND).sorted()
        return self._kinds.get(kind.KIND, _NO_KIND).typed(kind)

    @overload
    def in_namespace(self, kind: type[T], namespace: str) -> tuple[T, ...]: ...
    @overload
    def in_namespace(self, kind: str, namespace: str) -> tuple[KubeObject, ...]: ...
    def in_namespace(self, kind: type[T] | str, namespace: str) -> tuple[T, ...] | tuple[KubeObject, ...]:
        """Objects of ``kind`` in ``namespace``, sorted by name."""
        if isinstance(kind, str):
            return self._kinds.get(kind, _NO_KIND).in_namespace(namespace)
        objs = self._kinds.get(kind.KIND, _NO_KIND).in_namespace(namespace)
        return tuple(obj for obj in objs if isinstance(obj, kind))

    def namespace(self, name: str) -> Namespace | None:
        """The Namespace object called ``name``, or ``None``."""
        obj = self.get(ObjectRef(Namespace.KIND, "", name))
        return obj if isinstance(obj, Namespace) else None

    def endpoint_slices_for(self, namespace: str, service_name: str) -> tuple[EndpointSlice, ...]:
        """EndpointSlices in ``namespace`` labelled ``kubernetes.io/service-name: <service_name>``, by name."""
        return self._kinds.get(EndpointSlice.KIND, _NO_KIND).by_service(namespace, service_name)

    def kinds(self) -> tuple[str, ...]:
        """Kind names present, sorted."""
        return tuple(sorted(self._kinds))

    def refs(self) -> tuple[ObjectRef, ...]:
        """Every ref, sorted."""
        return tuple(sorted(ref for index in self._kinds.values() for ref in index.objects))

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[KubeObject]:
        for kind in sorted(self._kinds):
            yield from self._kinds[kind].sorted()

    def raw(self, ref: ObjectRef) -> Mapping[str, Any]:
        """The document ``ref`` was read from; for an object added without one, its Kubernetes-shaped form.

        :raises KeyError: No object has this ref.
        """
        index = self._kinds.get(ref.kind, _NO_KIND)
        obj = index.objects.get(ref)
        if obj is None:
            raise KeyError(ref)
        doc = index.raw.get(ref)
        if doc is not None:
            return doc
        if isinstance(obj, UnknownObject):
            return obj.body
        api_version = f"{obj.GROUP}/v1" if obj.GROUP else "v1"
        body: dict[str, Any] = converter.unstructure(obj)
        return {"apiVersion": api_version, "kind": obj.KIND, **body}

    @property
    def errors(self) -> tuple[ParseError, ...]:
        """Documents that failed to parse."""
        return self._errors

    # --- changing (a new set each time) ----------------------------------------------------------
    def with_object(self, obj: KubeObject, raw: Mapping[str, Any] | None = None) -> ResourceSet:
        """A set with ``obj`` added, or replacing the object with the same ref. Copies one kind's index."""
        ref = obj.ref
        index = self._kinds.get(ref.kind, _NO_KIND).changed(ref, obj, raw)
        return ResourceSet({**self._kinds, ref.kind: index}, self._errors)

    def without(self, ref: ObjectRef) -> ResourceSet:
        """A set without ``ref`` (the same set if it is absent). Copies one kind's index."""
        old = self._kinds.get(ref.kind)
        if old is None or ref not in old.objects:
            return self
        kinds = dict(self._kinds)
        if len(old.objects) > 1:
            kinds[ref.kind] = old.changed(ref, None, None)
        else:
            del kinds[ref.kind]
        return ResourceSet(kinds, self._errors)

    def with_errors(self, errors: Iterable[ParseError]) -> ResourceSet:
        """The same objects with ``errors`` as the parse errors."""
        return ResourceSet(self._kinds, tuple(errors))

    # --- comparing -------------------------------------------------------------------------------
    def diff(self, other: ResourceSet) -> ResourceSetDiff:
        """What changed from this set to ``other``: refs added, removed, and whose object differs.

        Kinds whose index is shared between the two sets (untouched by :meth:`with_object`) are skipped.
        """
        added: list[ObjectRef] = []
        removed: list[ObjectRef] = []
        changed: list[ObjectRef] = []
        for kind in self._kinds.keys() | other._kinds.keys():
            mine, theirs = self._kinds.get(kind, _NO_KIND), other._kinds.get(kind, _NO_KIND)
            if mine is theirs:
                continue
            for ref, obj in mine.objects.items():
                new = theirs.objects.get(ref)
                if new is None:
                    removed.append(ref)
                elif new is not obj and new != obj:
                    changed.append(ref)
            added.extend(ref for ref in theirs.objects if ref not in mine.objects)
        return ResourceSetDiff(tuple(sorted(added)), tuple(sorted(removed)), tuple(sorted(changed)))

    def _error_keys(self) -> tuple[tuple[str, tuple[str, ...], str | None], ...]:
        return tuple((e.ref, tuple(e.errors), e.source) for e in self._errors)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResourceSet):
            return NotImplemented
        if self._len != other._len or self._error_keys() != other._error_keys():
            return False
        return not self.diff(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<ResourceSet objects={self._len} kinds={len(self._kinds)} errors={len(self._errors)}>"
