"""Differences between snapshots, keyed by (resource type, name), and applying them."""

from __future__ import annotations

import attrs

from nantian.errors import ConfigRejected
from nantian.ir.snapshot import Resource, ResourceKey, Snapshot, resource_type

__all__ = ["Delta", "apply", "diff"]


@attrs.frozen(kw_only=True)
class Delta:
    """What turns the snapshot at ``base_version`` into the one at ``version``."""

    base_version: str
    version: str
    upserts: tuple[Resource, ...] = ()
    removals: tuple[ResourceKey, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.upserts and not self.removals


def diff(old: Snapshot, new: Snapshot) -> Delta:
    """The resources of ``new`` that differ from (or are missing in) ``old``, and those ``new`` dropped."""
    before, after = old.resources(), new.resources()
    upserts = tuple(r for k, r in after.items() if before.get(k) != r)
    removals = tuple(sorted((k for k in before if k not in after), key=lambda k: (k[0].value, k[1])))
    return Delta(base_version=old.version, version=new.version, upserts=upserts, removals=removals)


def apply(base: Snapshot, delta: Delta) -> Snapshot:
    """``base`` with ``delta`` applied. Raises :class:`ConfigRejected` if the versions do not line up."""
    if delta.base_version != base.version:
        raise ConfigRejected(f"delta is based on version {delta.base_version}, not {base.version}")
    resources = base.resources()
    for key in delta.removals:
        resources.pop(key, None)
    for r in delta.upserts:
        resources[(resource_type(r), r.name)] = r
    result = Snapshot.from_resources(resources.values())
    if result.version != delta.version:
        raise ConfigRejected(f"delta result has version {result.version}, expected {delta.version}")
    return result
