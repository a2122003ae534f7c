"""diff/apply: deltas between snapshots, and refusing deltas that do not line up."""

from __future__ import annotations

import pytest

from nantian import ir
from nantian.errors import ConfigRejected


def _listener(name: str, port: int = 80) -> ir.Listener:
    return ir.Listener(name=name, gateway="ns/gw", address="127.0.0.2", port=port, protocol=ir.Protocol.HTTP)


A = ir.Snapshot.build([_listener("l1"), _listener("l2")], [ir.Cluster(name="c1")], [ir.Secret(name="s1")])
B = ir.Snapshot.build(
    [_listener("l1"), _listener("l2", port=81), _listener("l3")], [ir.Cluster(name="c2")], [ir.Secret(name="s1")]
)


def test_diff_lists_upserts_and_removals() -> None:
    delta = ir.diff(A, B)
    assert (delta.base_version, delta.version) == (A.version, B.version)
    assert sorted((ir.resource_type(r).value, r.name) for r in delta.upserts) == [
        ("cluster", "c2"),
        ("listener", "l2"),
        ("listener", "l3"),
    ]
    assert delta.removals == ((ir.ResourceType.CLUSTER, "c1"),)
    assert not delta.empty


def test_apply_gives_the_target() -> None:
    assert ir.apply(A, ir.diff(A, B)) == B
    assert ir.apply(B, ir.diff(B, A)) == A


def test_diff_of_equal_snapshots_is_empty_and_applies() -> None:
    delta = ir.diff(A, A)
    assert delta.empty
    assert ir.apply(A, delta) == A


def test_diff_from_and_to_empty() -> None:
    empty = ir.Snapshot.build()
    assert len(ir.diff(empty, B).upserts) == 5
    assert ir.apply(empty, ir.diff(empty, B)) == B
    assert ir.apply(B, ir.diff(B, empty)) == empty


def test_apply_refuses_a_delta_for_another_base() -> None:
    with pytest.raises(ConfigRejected, match="based on version"):
        ir.apply(B, ir.diff(A, B))


def test_apply_refuses_a_delta_whose_result_does_not_match() -> None:
    delta = ir.diff(A, B)
    broken = ir.Delta(base_version=delta.base_version, version=delta.version, upserts=delta.upserts[:-1])
    with pytest.raises(ConfigRejected, match="expected"):
        ir.apply(A, broken)


def test_delta_resources_round_trip_as_typed_envelopes() -> None:
    # On the wire each upsert travels tagged with its type (the union alone is ambiguous to cattrs).
    for resource in ir.diff(A, B).upserts:
        cls = type(resource)
        assert ir.loads(ir.dumps(resource), cls) == resource
