"""The sans-IO stream session: sequences of events in, commands out."""

from __future__ import annotations

from nantian.ir import Snapshot
from nantian.testing.transport import sample_snapshot
from nantian.xds._session import (
    Accepted,
    AckReceived,
    Close,
    ConfigChanged,
    HelloReceived,
    NackReceived,
    Rejected,
    SendDelta,
    SendSnapshot,
    ServerSession,
    Stale,
    Tick,
)

V1 = sample_snapshot(1, tag="v1")
V2 = sample_snapshot(2, tag="v1")
V3 = sample_snapshot(3, tag="v1")


def hello(held: Snapshot | None = None, node: str = "n1") -> HelloReceived:
    return HelloReceived(node, frozenset(), held.version if held else "", held)


def test_nothing_is_sent_before_hello() -> None:
    s = ServerSession()
    assert s.handle(ConfigChanged(V1)) == []
    assert s.handle(hello()) == [SendSnapshot(V1, "1")]


def test_new_node_gets_a_full_snapshot_then_deltas_after_acks() -> None:
    s = ServerSession()
    assert s.handle(hello()) == []
    assert s.handle(ConfigChanged(V1)) == [SendSnapshot(V1, "1")]
    assert s.handle(AckReceived(V1.version, "1")) == [Accepted(V1.version)]
    assert s.acked_version == V1.version and s.pending_nonce is None
    assert s.handle(ConfigChanged(V2)) == [SendDelta(V1, V2, "2")]
    assert s.pending_version == V2.version


def test_node_holding_a_known_version_gets_a_delta_or_nothing() -> None:
    s = ServerSession()
    s.handle(hello(held=V1))
    assert s.handle(ConfigChanged(V1)) == []
    assert s.handle(ConfigChanged(V2)) == [SendDelta(V1, V2, "1")]


def test_unknown_held_version_means_full_snapshot() -> None:
    s = ServerSession()
    s.handle(HelloReceived("n1", frozenset(), "deadbeef", None))
    assert s.handle(ConfigChanged(V2)) == [SendSnapshot(V2, "1")]


def test_one_message_in_flight_and_intermediate_versions_are_skipped() -> None:
    s = ServerSession()
    s.handle(hello())
    s.handle(ConfigChanged(V1))
    assert s.handle(ConfigChanged(V2)) == []
    assert s.handle(ConfigChanged(V3)) == []
    assert s.handle(AckReceived(V1.version, "1")) == [Accepted(V1.version), SendDelta(V1, V3, "2")]


def test_stale_or_unknown_nonce_changes_nothing() -> None:
    s = ServerSession()
    s.handle(hello())
    s.handle(ConfigChanged(V1))
    assert s.handle(AckReceived(V1.version, "99")) == [Stale("99")]
    assert s.acked is None and s.pending_nonce == "1"
    assert s.handle(NackReceived(V1.version, "0", "x")) == [Stale("0")]
    assert s.pending_nonce == "1"


def test_nack_keeps_last_good_and_never_resends_the_bad_version() -> None:
    s = ServerSession()
    s.handle(hello())
    s.handle(ConfigChanged(V1))
    s.handle(AckReceived(V1.version, "1"))
    assert s.handle(ConfigChanged(V2)) == [SendDelta(V1, V2, "2")]
    assert s.handle(NackReceived(V2.version, "2", "port in use")) == [Rejected(V2.version, "port in use", V1.version)]
    assert s.acked_version == V1.version
    assert s.last_nack == Rejected(V2.version, "port in use", V1.version)
    # The same bad version again (a rebuild that changed nothing) is not resent.
    assert s.handle(ConfigChanged(V2)) == []
    # A newer version is sent as a delta from the last good one.
    assert s.handle(ConfigChanged(V3)) == [SendDelta(V1, V3, "3")]
    # Going back to the version the node serves sends nothing.
    s.handle(AckReceived(V3.version, "3"))
    assert s.handle(ConfigChanged(V3)) == []


def test_nack_of_first_snapshot_leaves_node_serving_nothing() -> None:
    s = ServerSession()
    s.handle(hello())
    s.handle(ConfigChanged(V1))
    assert s.handle(NackReceived(V1.version, "1", "bad")) == [Rejected(V1.version, "bad", None)]
    assert s.handle(ConfigChanged(V2)) == [SendSnapshot(V2, "2")]


def test_resync_nack_of_a_delta_is_answered_with_the_full_snapshot_once() -> None:
    s = ServerSession()
    s.handle(hello(held=V1))
    assert s.handle(ConfigChanged(V2)) == [SendDelta(V1, V2, "1")]
    assert s.handle(NackReceived(V2.version, "1", "base mismatch", resync=True)) == [SendSnapshot(V2, "2")]
    # A resync request on a full snapshot is a plain refusal: no loop.
    assert s.handle(NackReceived(V2.version, "2", "still", resync=True)) == [Rejected(V2.version, "still", None)]
    assert s.handle(ConfigChanged(V2)) == []


def test_protocol_violations_close_the_stream() -> None:
    assert ServerSession().handle(AckReceived("v", "1")) == [Close("Ack before Hello")]
    assert ServerSession().handle(NackReceived("v", "1", "x")) == [Close("Nack before Hello")]
    assert ServerSession().handle(HelloReceived("", frozenset(), "", None)) == [Close("Hello without a node id")]
    s = ServerSession()
    s.handle(hello())
    assert s.handle(hello()) == [Close("second Hello on one stream")]
    assert s.handle(ConfigChanged(V1)) == []  # closed: nothing more happens


def test_nonces_are_unique_per_stream() -> None:
    s = ServerSession()
    s.handle(hello())
    nonces = []
    for snap in (V1, V2, V3):
        (cmd,) = s.handle(ConfigChanged(snap))
        assert isinstance(cmd, SendSnapshot | SendDelta)
        nonces.append(cmd.nonce)
        s.handle(AckReceived(snap.version, cmd.nonce))
    assert len(set(nonces)) == 3


def test_refused_version_is_retried_later_with_growing_waits() -> None:
    s = ServerSession(retry_after=30.0, retry_max=100.0)
    s.handle(hello())
    s.handle(ConfigChanged(V1))
    s.handle(AckReceived(V1.version, "1"))
    assert s.handle(ConfigChanged(V2)) == [SendDelta(V1, V2, "2")]
    assert s.handle(NackReceived(V2.version, "2", "port in use", now=100.0)) == [
        Rejected(V2.version, "port in use", V1.version)
    ]
    assert s.handle(Tick(129.0)) == []
    assert s.handle(Tick(130.5)) == [SendDelta(V1, V2, "3")]
    s.handle(NackReceived(V2.version, "3", "port in use", now=131.0))
    assert s.handle(Tick(190.0)) == []  # the wait doubled: 60 s
    assert s.handle(Tick(191.5)) == [SendDelta(V1, V2, "4")]
    s.handle(NackReceived(V2.version, "4", "port in use", now=192.0))
    assert s.handle(Tick(291.0)) == []  # 120 s, capped at 100 s
    assert s.handle(Tick(292.5)) == [SendDelta(V1, V2, "5")]
    assert s.handle(AckReceived(V2.version, "5")) == [Accepted(V2.version)]


def test_without_retry_a_refused_version_waits_for_a_newer_one() -> None:
    s = ServerSession()
    s.handle(hello())
    s.handle(ConfigChanged(V1))
    s.handle(NackReceived(V1.version, "1", "bad", now=0.0))
    assert s.handle(Tick(1e9)) == []
    assert s.handle(ConfigChanged(V2)) == [SendSnapshot(V2, "2")]
