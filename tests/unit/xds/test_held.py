"""HeldConfig: decoding full snapshots and applying deltas against what a data plane holds."""

from __future__ import annotations

import pytest

from nantian import ir
from nantian.errors import ConfigRejected
from nantian.testing.transport import sample_snapshot
from nantian.xds._codec import BaseMismatch, encode_delta, encode_snapshot, pb
from nantian.xds._held import HeldConfig, assemble

BASE = sample_snapshot(30, tag="h")
NEXT = sample_snapshot(31, tag="h")


def test_assemble_matches_the_builder() -> None:
    held = HeldConfig.of(NEXT)
    assert assemble(held.resources, held.encoded) == NEXT


def test_full_snapshot_reuses_what_is_unchanged() -> None:
    previous = HeldConfig.of(BASE)
    held = HeldConfig.from_message(encode_snapshot(NEXT), previous)
    assert held.snapshot == NEXT
    same = [k for k in BASE.resources() if k in NEXT.resources() and BASE.resources()[k] == NEXT.resources()[k]]
    assert same and all(held.resources[k] is previous.resources[k] for k in same)


def test_full_snapshot_refusals() -> None:
    message = encode_snapshot(BASE)
    message.resources.append(message.resources[0])
    with pytest.raises(ConfigRejected, match="twice"):
        HeldConfig.from_message(message)
    message = encode_snapshot(BASE)
    message.version = "not-it"
    with pytest.raises(ConfigRejected, match="version"):
        HeldConfig.from_message(message)
    message = encode_snapshot(BASE)
    message.resources[0].type = "gizmo"
    with pytest.raises(ConfigRejected, match="unknown resource type"):
        HeldConfig.from_message(message, HeldConfig.of(BASE))


def test_delta_with_patch_and_splice() -> None:
    message = encode_delta(ir.diff(BASE, NEXT), "1", BASE)
    (patched,) = [u for u in message.upserts if u.patch]
    assert patched.HasField("splice") and patched.body == b""
    held = HeldConfig.of(BASE).apply_delta(message)
    assert held.snapshot == NEXT
    assert held.encoded[(ir.ResourceType.LISTENER, patched.name)] == ir.dumps(NEXT.listeners[0])


def test_delta_refusals() -> None:
    held = HeldConfig.of(BASE)
    message = encode_delta(ir.diff(BASE, NEXT), "1", BASE)
    wrong_base = pb.Delta()
    wrong_base.CopyFrom(message)
    wrong_base.base_version = "elsewhere"
    with pytest.raises(BaseMismatch, match="holding"):
        held.apply_delta(wrong_base)
    (patched,) = [u for u in message.upserts if u.patch]
    patched.splice.prefix = 10**9
    with pytest.raises(BaseMismatch, match="splice"):
        held.apply_delta(message)
    message = encode_delta(ir.diff(BASE, NEXT), "1", BASE)
    (patched,) = [u for u in message.upserts if u.patch]
    patched.schema_version = "nantian.ir/v0"
    with pytest.raises(ConfigRejected, match="schema"):
        held.apply_delta(message)
    message = encode_delta(ir.diff(BASE, NEXT), "1", BASE)
    message.removals.add(type="gizmo", name="x")
    with pytest.raises(ConfigRejected, match="unknown resource type"):
        held.apply_delta(message)
    message = encode_delta(ir.diff(BASE, NEXT), "1", BASE)
    message.version = "other"
    with pytest.raises(BaseMismatch, match="expected other"):
        held.apply_delta(message)


def test_patch_without_splice_falls_back_to_json() -> None:
    message = encode_delta(ir.diff(BASE, NEXT), "1", BASE)
    (patched,) = [u for u in message.upserts if u.patch]
    patched.ClearField("splice")
    assert HeldConfig.of(BASE).apply_delta(message).snapshot == NEXT
