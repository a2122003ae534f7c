"""A data plane's held configuration: a full snapshot decodes to the server's snapshot (same version as
``Snapshot.build``), and any delta the server encodes (patches and splices included) applies to exactly the
target snapshot."""

from __future__ import annotations

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nantian import ir
from nantian.testing import strategies as nst
from nantian.xds._codec import encode_delta, encode_snapshot, pb
from nantian.xds._held import HeldConfig


def _renamed(resource: ir.Resource, name: str) -> ir.Resource:
    return attrs.evolve(resource, name=name)


@st.composite
def related_snapshots(draw: st.DrawFn) -> tuple[ir.Snapshot, ir.Snapshot]:
    """``b`` keeps, drops, replaces (same name, other content) or changes one field of each resource of ``a``,
    and adds some new ones."""
    a = draw(nst.ir_snapshots(max_resources=3))
    fresh = draw(nst.ir_snapshots(max_resources=3, consistent=False))
    donors: dict[type, list[ir.Resource]] = {}
    for r in fresh.resources().values():
        donors.setdefault(type(r), []).append(r)
    out: dict[ir.ResourceKey, ir.Resource] = {}
    for key, r in a.resources().items():
        action = draw(st.sampled_from(["keep", "drop", "replace", "field"]))
        donor = donors.get(type(r))
        if action == "keep" or (action in ("replace", "field") and not donor):
            out[key] = r
        elif action == "replace" and donor:
            out[key] = _renamed(draw(st.sampled_from(donor)), r.name)
        elif action == "field" and donor:
            other = draw(st.sampled_from(donor))
            field = draw(st.sampled_from([f.name for f in attrs.fields(type(r)) if f.name != "name"]))
            out[key] = attrs.evolve(r, **{field: getattr(other, field)})
    for key, r in fresh.resources().items():
        if key not in out and draw(st.booleans()):
            out[key] = r
    return a, ir.Snapshot.from_resources(out.values())


@settings(
    max_examples=40, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow]
)  # each example builds several whole snapshots: keep CI fast
@given(nst.ir_snapshots(max_resources=3, consistent=False))
def test_full_snapshot_decodes_with_the_builders_version(snapshot: ir.Snapshot) -> None:
    wire = pb.Snapshot.FromString(encode_snapshot(snapshot, "1").SerializeToString())
    held = HeldConfig.from_message(wire)
    assert held.snapshot == snapshot
    assert held.version == snapshot.version


@settings(
    max_examples=30, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow]
)  # each example builds several whole snapshots: keep CI fast
@given(related_snapshots())
def test_encoded_delta_applies_to_the_target(pair: tuple[ir.Snapshot, ir.Snapshot]) -> None:
    a, b = pair
    wire = pb.Delta.FromString(encode_delta(ir.diff(a, b), "1", a).SerializeToString())
    held = HeldConfig.of(a).apply_delta(wire)
    assert held.snapshot == b
    assert held.version == b.version
    # And the bytes it holds are what the codec would encode, so the next delta checks out too.
    assert dict(held.encoded) == {k: ir.dumps(r) for k, r in b.resources().items()}
    back = pb.Delta.FromString(encode_delta(ir.diff(b, a), "2", b).SerializeToString())
    assert held.apply_delta(back).snapshot == a
