"""The Envoy ADS stream core: subscriptions, acks, nacks, stale nonces, clusters before listeners."""

from __future__ import annotations

from nantian.xds.envoy._ads import AdsSession, Changed, Nacked, Request, Respond, TypeAcked

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"


def test_subscribe_ack_change_nack() -> None:
    s = AdsSession()
    assert s.handle(Request(CDS, "", "")) == []  # nothing to send yet
    v1 = Changed("v1", {CDS: ["c"], LDS: ["l"]})
    assert s.handle(v1) == [Respond(CDS, "v1", "1", ["c"])]
    assert s.handle(Request(LDS, "", "")) == [Respond(LDS, "v1", "2", ["l"])]
    assert s.handle(Request(CDS, "v1", "1")) == [TypeAcked(CDS, "v1", everything=False)]
    assert s.handle(Request(LDS, "v1", "2")) == [TypeAcked(LDS, "v1", everything=True)]

    v2 = Changed("v2", {CDS: ["c2"], LDS: ["l2"]})
    assert s.handle(v2) == [Respond(CDS, "v2", "3", ["c2"]), Respond(LDS, "v2", "4", ["l2"])]
    assert s.handle(Request(CDS, "v1", "1")) == []  # stale nonce
    assert s.handle(Request(LDS, "v1", "4", error="cannot bind")) == [Nacked(LDS, "v2", "cannot bind")]
    assert s.handle(v2) == []  # not resent
    v3 = Changed("v3", {CDS: ["c3"], LDS: ["l3"]})
    assert s.handle(v3) == [Respond(CDS, "v3", "5", ["c3"]), Respond(LDS, "v3", "6", ["l3"])]


def test_initial_request_gets_current_config() -> None:
    s = AdsSession()
    s.handle(Changed("v1", {CDS: ["c"]}))
    assert s.handle(Request(CDS, "", "")) == [Respond(CDS, "v1", "1", ["c"])]
    assert s.handle(Request(LDS, "", "")) == [Respond(LDS, "v1", "2", [])]
