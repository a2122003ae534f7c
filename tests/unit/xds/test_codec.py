"""IR <-> gateway.control.v1 envelopes: round trips, and every way a peer's message can be refused."""

from __future__ import annotations

import pytest

from nantian.errors import ConfigRejected
from nantian.ir import SCHEMA_VERSION, diff
from nantian.testing.transport import sample_snapshot
from nantian.xds._codec import (
    decode_delta,
    decode_resource,
    decode_snapshot,
    decode_status,
    encode_delta,
    encode_resource,
    encode_snapshot,
    encode_status,
    pb,
)
from nantian.xds.status import Health, ListenerReport, StatusReport

SNAP = sample_snapshot(3, tag="c")


def test_snapshot_round_trips_through_bytes() -> None:
    message = encode_snapshot(SNAP, "n1")
    wire = pb.Snapshot.FromString(message.SerializeToString())
    assert wire.nonce == "n1"
    assert {r.schema_version for r in wire.resources} == {SCHEMA_VERSION}
    assert decode_snapshot(wire) == SNAP


def test_delta_round_trips() -> None:
    other = sample_snapshot(1, tag="d")
    delta = diff(SNAP, other)
    assert delta.removals and delta.upserts
    assert decode_delta(pb.Delta.FromString(encode_delta(delta, "7").SerializeToString())) == delta


def test_wrong_schema_version_is_refused() -> None:
    env = encode_resource(SNAP.clusters[0])
    env.schema_version = "nantian.ir/v0"
    with pytest.raises(ConfigRejected, match="schema"):
        decode_resource(env)


def test_unknown_type_is_refused() -> None:
    env = encode_resource(SNAP.clusters[0])
    env.type = "route"
    with pytest.raises(ConfigRejected, match="unknown resource type"):
        decode_resource(env)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"name": "x", "connectTimeout": -1}',
        b'{"name": "x", "endpoints": [], "bogus": 1}',
        b"\xff\xfe",
    ],
)
def test_bad_bodies_are_refused_with_the_resource_named(body: bytes) -> None:
    env = pb.Resource(type="cluster", name="x", schema_version=SCHEMA_VERSION, body=body)
    with pytest.raises(ConfigRejected, match="cluster 'x'"):
        decode_resource(env)


def test_envelope_name_must_match_body() -> None:
    env = encode_resource(SNAP.clusters[0])
    env.name = "someone/else:80"
    with pytest.raises(ConfigRejected, match="body names"):
        decode_resource(env)


def test_snapshot_version_must_match_content() -> None:
    message = encode_snapshot(SNAP)
    message.version = "0000"
    with pytest.raises(ConfigRejected, match="version"):
        decode_snapshot(message)


def test_duplicate_resources_are_refused() -> None:
    message = encode_snapshot(SNAP)
    message.resources.append(message.resources[-1])
    with pytest.raises(ConfigRejected, match="duplicate"):
        decode_snapshot(message)


def test_unknown_removal_type_is_refused() -> None:
    message = pb.Delta(base_version="a", version="b", removals=[pb.ResourceKey(type="route", name="x")])
    with pytest.raises(ConfigRejected, match="unknown resource type"):
        decode_delta(message)


def test_status_round_trips() -> None:
    report = StatusReport(
        version="abc",
        health=Health.DEGRADED,
        listeners=(
            ListenerReport(name="l1", address="127.0.0.2", port=8080, bound=True),
            ListenerReport(name="l2", address="127.0.0.2", port=8081, bound=False, error="address in use"),
        ),
        counters={"requests": 5},
    )
    back = decode_status(pb.StatusReport.FromString(encode_status(report).SerializeToString()))
    assert back == report and dict(back.counters) == {"requests": 5}
    assert decode_status(pb.StatusReport()).health is Health.NOT_SERVING
    assert decode_status(pb.StatusReport()).version is None
