"""IR <-> gateway.control.v1 messages: typed envelopes whose body is the IR codec's canonical JSON.

The only module of :mod:`nantian.xds` that knows both the IR codec and the protobuf types. Decoding never
trusts the peer: a wrong type, schema version or body raises :class:`~nantian.errors.ConfigRejected` with
the resource named, so a data plane can Nack it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import cattrs

from nantian import _protogen
from nantian.errors import ConfigRejected
from nantian.ir import SCHEMA_VERSION, Delta, Resource, ResourceKey, ResourceType, Snapshot, dumps, loads
from nantian.ir.snapshot import CLASSES, resource_type
from nantian.xds._patch import apply_patch, make_patch
from nantian.xds.status import Health, ListenerReport, StatusReport

_protogen.ensure()

from nantian._proto.gateway.control.v1 import config_pb2 as pb  # noqa: E402
from nantian._proto.gateway.control.v1 import config_pb2_grpc as pb_grpc  # noqa: E402

__all__ = [
    "BaseMismatch",
    "decode_delta",
    "decode_resource",
    "decode_snapshot",
    "decode_status",
    "encode_delta",
    "encode_resource",
    "encode_snapshot",
    "encode_status",
    "make_splice",
    "pb",
    "pb_grpc",
    "splice_bytes",
]


class BaseMismatch(ConfigRejected):
    """A delta does not fit the snapshot it is applied to: the data plane should ask for a full snapshot."""


def encode_resource(resource: Resource) -> pb.Resource:
    """One IR resource as an envelope."""
    return pb.Resource(
        type=resource_type(resource).value, name=resource.name, schema_version=SCHEMA_VERSION, body=dumps(resource)
    )


def decode_resource(envelope: pb.Resource) -> Resource:
    """The IR resource in ``envelope``. Raises :class:`ConfigRejected` naming it when it cannot be read."""
    where = f"{envelope.type or '?'} {envelope.name!r}"
    if envelope.schema_version != SCHEMA_VERSION:
        raise ConfigRejected(f"{where}: schema {envelope.schema_version!r} is not {SCHEMA_VERSION!r}")
    try:
        cls = CLASSES[ResourceType(envelope.type)]
    except ValueError:
        raise ConfigRejected(f"{where}: unknown resource type") from None
    try:
        resource = loads(envelope.body, cls)
    except cattrs.BaseValidationError as exc:
        raise ConfigRejected(f"{where}: cannot decode: {'; '.join(cattrs.transform_error(exc))}") from exc
    except Exception as exc:  # the peer's bytes: any failure to read them refuses this resource, nothing more
        raise ConfigRejected(f"{where}: cannot decode: {exc!r}") from exc
    if resource.name != envelope.name:
        raise ConfigRejected(f"{where}: body names {resource.name!r}")
    return resource


def _decode_all(envelopes: Iterable[pb.Resource]) -> list[Resource]:
    return [decode_resource(e) for e in envelopes]


def encode_snapshot(snapshot: Snapshot, nonce: str = "") -> pb.Snapshot:
    """A full snapshot message."""
    resources: Sequence[Resource] = (*snapshot.listeners, *snapshot.clusters, *snapshot.secrets)
    return pb.Snapshot(version=snapshot.version, nonce=nonce, resources=[encode_resource(r) for r in resources])


def decode_snapshot(message: pb.Snapshot) -> Snapshot:
    """The IR snapshot in ``message``; its content must hash to the version it claims."""
    snapshot = Snapshot.from_resources(_decode_all(message.resources))
    if len(snapshot.resources()) != len(message.resources):
        raise ConfigRejected("snapshot holds duplicate resource names")
    if snapshot.version != message.version:
        raise ConfigRejected(f"snapshot content has version {snapshot.version}, message says {message.version}")
    return snapshot


def encode_delta(delta: Delta, nonce: str = "", base: Snapshot | None = None) -> pb.Delta:
    """A delta message. With ``base`` (the snapshot at ``delta.base_version``), a changed resource travels as a
    patch against its previous version whenever that is smaller than its body."""
    before = base.resources() if base is not None else {}
    upserts = []
    for r in delta.upserts:
        envelope = encode_resource(r)
        old = before.get((resource_type(r), r.name))
        if old is not None:
            old_body = dumps(old)
            patch = json.dumps(
                make_patch(json.loads(old_body), json.loads(envelope.body)), sort_keys=True, separators=(",", ":")
            ).encode()
            splice = make_splice(old_body, envelope.body)
            if len(patch) + len(splice.middle) < len(envelope.body):
                envelope.patch = patch
                envelope.splice.CopyFrom(splice)
                envelope.body = b""
        upserts.append(envelope)
    return pb.Delta(
        base_version=delta.base_version,
        version=delta.version,
        nonce=nonce,
        upserts=upserts,
        removals=[pb.ResourceKey(type=t.value, name=n) for t, n in delta.removals],
    )


def decode_delta(message: pb.Delta, base: Snapshot | None = None) -> Delta:
    """The IR delta in ``message`` (not yet applied). Patched upserts need ``base``, the snapshot the delta is
    based on; :class:`BaseMismatch` when a patch does not fit it."""
    before = base.resources() if base is not None else {}
    removals: list[ResourceKey] = []
    for key in message.removals:
        try:
            removals.append((ResourceType(key.type), key.name))
        except ValueError:
            raise ConfigRejected(f"removal of unknown resource type {key.type!r}") from None
    upserts: list[Resource] = []
    for envelope in message.upserts:
        if envelope.patch:
            upserts.append(decode_resource(_patched(envelope, before)))
        else:
            upserts.append(decode_resource(envelope))
    return Delta(
        base_version=message.base_version, version=message.version, upserts=tuple(upserts), removals=tuple(removals)
    )


def make_splice(old: bytes, new: bytes) -> pb.Splice:
    """The bytes of ``new`` as a splice of ``old``: keep the common prefix and suffix, replace the middle."""
    a, b = memoryview(old), memoryview(new)
    limit = min(len(a), len(b))
    lo, hi = 0, limit
    while lo < hi:  # longest common prefix, by bisection over memcmp-backed comparisons
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    prefix = lo
    lo, hi = 0, limit - prefix
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            lo = mid
        else:
            hi = mid - 1
    suffix = lo
    return pb.Splice(prefix=prefix, suffix=suffix, middle=bytes(b[prefix : len(b) - suffix]))


def splice_bytes(old: bytes, splice: pb.Splice) -> bytes:
    """Undo :func:`make_splice`. :class:`BaseMismatch` if it does not fit ``old``."""
    if splice.prefix + splice.suffix > len(old):
        raise BaseMismatch(f"splice keeps {splice.prefix}+{splice.suffix} bytes of {len(old)}")
    return old[: splice.prefix] + splice.middle + old[len(old) - splice.suffix :]


def _patched(envelope: pb.Resource, before: Mapping[ResourceKey, Resource]) -> pb.Resource:
    where = f"{envelope.type} {envelope.name!r}"
    try:
        old = before[(ResourceType(envelope.type), envelope.name)]
    except (KeyError, ValueError):
        raise BaseMismatch(f"{where}: patched, but the base holds no such resource") from None
    try:
        body = apply_patch(json.loads(dumps(old)), json.loads(envelope.patch))
        encoded = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    except Exception as exc:  # the peer's bytes: a patch that does not fit asks for a full snapshot
        raise BaseMismatch(f"{where}: patch does not apply: {exc}") from exc
    return pb.Resource(type=envelope.type, name=envelope.name, schema_version=envelope.schema_version, body=encoded)


_HEALTH = {
    Health.SERVING: pb.HEALTH_SERVING,
    Health.DEGRADED: pb.HEALTH_DEGRADED,
    Health.NOT_SERVING: pb.HEALTH_NOT_SERVING,
}
_HEALTH_BACK = {v: k for k, v in _HEALTH.items()}


def encode_status(report: StatusReport) -> pb.StatusReport:
    """A status report message."""
    return pb.StatusReport(
        version=report.version or "",
        health=_HEALTH[report.health],
        listeners=[
            pb.ListenerStatus(name=x.name, address=x.address, port=x.port, bound=x.bound, error=x.error or "")
            for x in report.listeners
        ],
        counters=dict(report.counters),
    )


def decode_status(message: pb.StatusReport) -> StatusReport:
    """The report in ``message``; unknown health values read as ``NOT_SERVING``."""
    return StatusReport(
        version=message.version or None,
        health=_HEALTH_BACK.get(message.health, Health.NOT_SERVING),
        listeners=tuple(
            ListenerReport(name=x.name, address=x.address, port=x.port, bound=x.bound, error=x.error or None)
            for x in message.listeners
        ),
        counters=dict(message.counters),
    )
