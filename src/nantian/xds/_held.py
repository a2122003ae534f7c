"""The configuration a data plane holds, with the canonical bytes of each resource, so that a delta costs
in proportion to what it changes: patches apply to the bytes and to the IR values the data plane already has,
and the version check hashes bytes instead of re-encoding every resource."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping

import attrs

from nantian.errors import ConfigRejected
from nantian.ir import SCHEMA_VERSION, Resource, ResourceKey, ResourceType, Snapshot, dumps
from nantian.ir.snapshot import CLASSES, resource_type
from nantian.xds._codec import BaseMismatch, decode_resource, pb, splice_bytes
from nantian.xds._irpatch import Unsupported, patch_value
from nantian.xds._patch import apply_patch

__all__ = ["HeldConfig", "assemble"]

_ORDER = (ResourceType.LISTENER, ResourceType.CLUSTER, ResourceType.SECRET)


def _order(keys: Iterable[ResourceKey]) -> tuple[tuple[ResourceType, tuple[str, ...]], ...]:
    names: dict[ResourceType, list[str]] = {t: [] for t in _ORDER}
    for kind, name in keys:
        names[kind].append(name)
    return tuple((kind, tuple(sorted(names[kind]))) for kind in _ORDER)


def assemble(
    resources: Mapping[ResourceKey, Resource],
    encoded: Mapping[ResourceKey, bytes],
    order: tuple[tuple[ResourceType, tuple[str, ...]], ...] | None = None,
) -> Snapshot:
    """The snapshot of ``resources``, its version hashed from ``encoded`` (each resource's ``nantian.ir.dumps``).

    Equal to ``Snapshot.from_resources(resources.values())`` (the same ordering and digest as
    :meth:`nantian.ir.Snapshot.build`) without encoding anything again. ``order`` (names sorted per type, as
    :func:`_order` gives) may be passed when the set of keys is known not to have changed.
    """
    parts: list[bytes] = []
    groups: dict[ResourceType, tuple[Resource, ...]] = {}
    for kind, names in order if order is not None else _order(resources):
        tag = kind.value.encode() + b"\0"
        keys = [(kind, n) for n in names]
        groups[kind] = tuple(resources[k] for k in keys)
        for k in keys:
            parts += (tag, encoded[k], b"\n")
    return Snapshot(
        listeners=groups[ResourceType.LISTENER],  # type: ignore[arg-type]
        clusters=groups[ResourceType.CLUSTER],  # type: ignore[arg-type]
        secrets=groups[ResourceType.SECRET],  # type: ignore[arg-type]
        version=hashlib.sha256(b"".join(parts)).hexdigest()[:16],
    )


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@attrs.frozen(slots=False)
class HeldConfig:
    """A snapshot and the canonical encoding of each of its resources."""

    snapshot: Snapshot
    encoded: Mapping[ResourceKey, bytes] = attrs.field(repr=False, eq=False)
    resources: Mapping[ResourceKey, Resource] = attrs.field(repr=False, eq=False)

    @functools.cached_property
    def _order(self) -> tuple[tuple[ResourceType, tuple[str, ...]], ...]:
        return _order(self.resources)

    @property
    def version(self) -> str:
        return self.snapshot.version

    @classmethod
    def of(cls, snapshot: Snapshot) -> HeldConfig:
        """Hold ``snapshot`` (encodes each resource once)."""
        resources = snapshot.resources()
        return cls(snapshot, {k: dumps(r) for k, r in resources.items()}, resources)

    @classmethod
    def from_message(cls, message: pb.Snapshot, previous: HeldConfig | None = None) -> HeldConfig:
        """Decode a full snapshot. :class:`ConfigRejected` if any resource is unreadable or the content does not
        hash to the version the message claims.

        Resources whose bytes equal those of ``previous`` (what the data plane held) reuse its decoded values: a
        data plane resynchronising after a control-plane restart decodes only what changed.
        """
        resources: dict[ResourceKey, Resource] = {}
        encoded: dict[ResourceKey, bytes] = {}
        old_encoded = previous.encoded if previous is not None else {}
        old_resources = previous.resources if previous is not None else {}
        for envelope in message.resources:
            body = bytes(envelope.body)
            try:
                key: ResourceKey = (ResourceType(envelope.type), envelope.name)
            except ValueError:
                key = (ResourceType.LISTENER, "")  # unknown type: decode_resource refuses it below
            known = old_resources.get(key)
            if known is not None and old_encoded.get(key) == body and envelope.schema_version == SCHEMA_VERSION:
                resource = known
            else:
                resource = decode_resource(envelope)
                key = (resource_type(resource), resource.name)
            if key in resources:
                raise ConfigRejected(f"snapshot holds {key[0].value} {key[1]!r} twice")
            resources[key], encoded[key] = resource, body
        snapshot = assemble(resources, encoded)
        if snapshot.version != message.version:
            raise ConfigRejected(f"snapshot content has version {snapshot.version}, message says {message.version}")
        return cls(snapshot, encoded, resources)

    def apply_delta(self, message: pb.Delta) -> HeldConfig:
        """This configuration with ``message`` applied. :class:`BaseMismatch` when the delta does not fit what is
        held (the data plane should ask for a full snapshot), :class:`ConfigRejected` for an unreadable resource."""
        if message.base_version != self.version:
            raise BaseMismatch(f"delta from {message.base_version}; holding {self.version}")
        resources = dict(self.resources)
        encoded = dict(self.encoded)
        same_keys = not message.removals
        for removal in message.removals:
            try:
                key = (ResourceType(removal.type), removal.name)
            except ValueError:
                raise ConfigRejected(f"removal of unknown resource type {removal.type!r}") from None
            resources.pop(key, None)
            encoded.pop(key, None)
        for envelope in message.upserts:
            if envelope.patch:
                key, resource, body = self._patched(envelope, resources, encoded)
            else:
                resource = decode_resource(envelope)
                key, body = (resource_type(resource), resource.name), bytes(envelope.body)
            same_keys = same_keys and key in resources
            resources[key], encoded[key] = resource, body
        snapshot = assemble(resources, encoded, self._order if same_keys else None)
        if snapshot.version != message.version:
            raise BaseMismatch(f"delta result has version {snapshot.version}, expected {message.version}")
        return HeldConfig(snapshot, encoded, resources)

    @staticmethod
    def _patched(
        envelope: pb.Resource, resources: Mapping[ResourceKey, Resource], encoded: Mapping[ResourceKey, bytes]
    ) -> tuple[ResourceKey, Resource, bytes]:
        where = f"{envelope.type} {envelope.name!r}"
        try:
            key = (ResourceType(envelope.type), envelope.name)
        except ValueError:
            raise ConfigRejected(f"{where}: unknown resource type") from None
        if envelope.schema_version != SCHEMA_VERSION:
            raise ConfigRejected(f"{where}: schema {envelope.schema_version!r} is not {SCHEMA_VERSION!r}")
        old = resources.get(key)
        if old is None:
            raise BaseMismatch(f"{where}: patched, but the base holds no such resource")
        try:
            patch = json.loads(envelope.patch)
            if envelope.HasField("splice"):
                body = splice_bytes(encoded[key], envelope.splice)
            else:
                body = _canonical(apply_patch(json.loads(encoded[key]), patch))
        except BaseMismatch:
            raise
        except Exception as exc:  # the peer's bytes: a patch that does not fit asks for a full snapshot
            raise BaseMismatch(f"{where}: patch does not apply: {exc}") from exc
        try:
            resource = patch_value(old, patch, CLASSES[key[0]])
        except Unsupported:
            resource = decode_resource(
                pb.Resource(type=envelope.type, name=envelope.name, schema_version=envelope.schema_version, body=body)
            )
        except Exception as exc:  # a value the IR refuses (validators): the resource is unreadable
            raise ConfigRejected(f"{where}: cannot decode: {exc}") from exc
        if resource.name != envelope.name:
            raise ConfigRejected(f"{where}: patched body names {resource.name!r}")
        return key, resource, body
