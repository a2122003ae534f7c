"""ReferenceGrant: which cross-namespace references are permitted."""

from __future__ import annotations

from collections.abc import Iterable

from nantian.resources import ReferenceGrant

__all__ = ["GrantIndex"]


class GrantIndex:
    """Answers "may a ``from_kind`` in ``from_ns`` refer to ``to_kind`` ``to_ns/to_name``?".

    Indexed by target namespace so one check costs a few dictionary lookups.
    """

    def __init__(self, grants: Iterable[ReferenceGrant]) -> None:
        # (to_ns, from_group, from_kind, from_ns, to_group, to_kind) -> names allowed (None: any name)
        self._allowed: dict[tuple[str, str, str, str, str, str], set[str | None]] = {}
        for grant in grants:
            ns = grant.metadata.namespace
            for f in grant.spec.from_:
                for t in grant.spec.to:
                    key = (ns, f.group or "", f.kind, f.namespace, t.group or "", t.kind)
                    self._allowed.setdefault(key, set()).add(t.name or None)

    def permits(
        self, *, from_group: str, from_kind: str, from_ns: str, to_group: str, to_kind: str, to_ns: str, to_name: str
    ) -> bool:
        """Same namespace always; otherwise only with a ReferenceGrant in ``to_ns``."""
        if from_ns == to_ns:
            return True
        names = self._allowed.get((to_ns, from_group, from_kind, from_ns, to_group, to_kind))
        return bool(names) and (None in names or to_name in names)  # type: ignore[operator]
