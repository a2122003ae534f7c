"""NodeRegistry bookkeeping and the /api/v1/nodes documents built from it."""

from __future__ import annotations

import json
import random

from nantian.controlplane.nodes import node_document, node_documents
from nantian.xds import Backoff, Health, ListenerReport, NodeRegistry, StatusReport
from nantian.xds.status import health_of


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_lifecycle_of_a_node() -> None:
    clock = Clock()
    reg = NodeRegistry(forget_after=60, clock=clock)
    rec = reg.connect("a", build="nantian/0.1.0", gateways=("ns/gw",), peer="ipv4:127.0.0.1:5", transport="grpc")
    reg.sent(rec, "v1", 100)
    assert rec.version_pending == "v1"
    reg.acked(rec, "v1")
    reg.sent(rec, "v2", 10)
    reg.nacked(rec, "v2", "port in use")
    status = StatusReport(version="v1", health=Health.SERVING, counters={"requests": 3})
    reg.reported(rec, status)
    assert (rec.version_acked, rec.version_pending, rec.nacks, rec.messages_sent, rec.bytes_sent) == (
        "v1",
        None,
        1,
        2,
        110,
    )
    doc = node_document(rec)
    assert json.loads(json.dumps(doc)) == doc
    assert doc["nodeId"] == "a" and doc["connected"] is True and doc["gateways"] == ["ns/gw"]
    assert doc["versionAcked"] == "v1" and doc["lastNack"]["detail"] == "port in use"
    assert doc["lastStatus"]["health"] == "Serving" and doc["lastStatus"]["counters"] == {"requests": 3}
    assert doc["connectedSince"].endswith("+00:00")

    reg.disconnect(rec)
    assert not rec.connected and [n["nodeId"] for n in node_documents(reg)] == ["a"]
    clock.now += 61
    assert node_documents(reg) == [] and len(reg) == 0


def test_reconnect_takes_over_and_keeps_history() -> None:
    reg = NodeRegistry()
    old = reg.connect("a")
    reg.nacked(old, "v2", "bad")
    new = reg.connect("a")
    assert new.stream != old.stream and new.nacks == 1 and new.last_nack == old.last_nack
    reg.disconnect(old)  # the old stream's end is noticed late: the node stays connected
    assert reg.get("a") is new and new.connected


def test_health() -> None:
    up = ListenerReport(name="l1", address="127.0.0.2", port=80, bound=True)
    down = ListenerReport(name="l2", address="127.0.0.2", port=81, bound=False, error="in use")
    assert health_of(None, ()) is Health.NOT_SERVING
    assert health_of("v", ()) is Health.SERVING
    assert health_of("v", (up,)) is Health.SERVING
    assert health_of("v", (up, down)) is Health.DEGRADED
    assert health_of("v", (down,)) is Health.NOT_SERVING


def test_backoff_grows_is_capped_and_jittered() -> None:
    b = Backoff(initial=0.5, maximum=4.0, multiplier=2.0, jitter=0.5)
    rand = random.Random(7)
    delays = [b.delay(n, rand) for n in range(8)]
    for n, d in enumerate(delays):
        ceiling = min(4.0, 0.5 * 2**n)
        assert ceiling / 2 <= d <= ceiling
    assert len(set(delays)) == len(delays)
    assert b.delay(10_000, rand) <= 4.0
