"""SnapshotStore: publish, wake-ups, views, history lookups, shared deltas."""

from __future__ import annotations

import asyncio

from nantian.ir import Snapshot, apply
from nantian.testing.transport import sample_snapshot
from nantian.xds import SnapshotStore, for_gateways

A = sample_snapshot(2, gateway="ns/a", port=80, tag="a")
B = sample_snapshot(2, gateway="ns/b", port=81, tag="b")
BOTH = Snapshot.build([*A.listeners, *B.listeners], [*A.clusters, *B.clusters], [*A.secrets, *B.secrets])


def test_publish_reports_whether_the_version_changed() -> None:
    store = SnapshotStore()
    assert store.current is None and store.view() is None
    assert store.publish(A) is True
    assert store.generation == 1
    assert store.publish(Snapshot.build(A.listeners, A.clusters)) is False  # same content, same version
    assert store.generation == 1
    assert store.publish(B) is True
    assert store.current == B and store.generation == 2


def test_wait_returns_on_change_only() -> None:
    async def scenario() -> None:
        store = SnapshotStore()
        store.publish(A)
        seen = store.generation
        waiter = asyncio.create_task(store.wait(seen))
        await asyncio.sleep(0.01)
        store.publish(A)
        await asyncio.sleep(0.01)
        assert not waiter.done()
        store.publish(B)
        assert await asyncio.wait_for(waiter, 1.0) == seen + 1
        assert await asyncio.wait_for(store.wait(seen), 1.0) == seen + 1  # already newer: at once

    asyncio.run(scenario())


def test_views_are_filtered_and_cached() -> None:
    store = SnapshotStore()
    store.publish(BOTH)
    view = store.view(["ns/a"])
    assert view == for_gateways(BOTH, ["ns/a"]) == Snapshot.build(A.listeners, A.clusters)
    assert store.view(["ns/a"]) is view
    assert store.view() is BOTH


def test_lookup_finds_remembered_views_only() -> None:
    store = SnapshotStore(history=4)
    store.publish(A)
    first = store.view(["ns/a"])
    assert first is not None
    store.publish(BOTH)
    assert store.lookup(first.version, ["ns/a"]) == first
    assert store.lookup(A.version) == A
    assert store.lookup(first.version, ["ns/b"]) is None
    assert store.lookup("") is None and store.lookup("unknown") is None
    for i in range(6):  # push A out of the bounded history
        store.publish(sample_snapshot(1, tag=f"x{i}"))
    assert store.lookup(A.version) is None


def test_lookup_computes_the_current_view_on_demand() -> None:
    store = SnapshotStore()
    store.publish(BOTH)
    wanted = for_gateways(BOTH, ["ns/b"])
    assert store.lookup(wanted.version, ["ns/b"]) == wanted


def test_delta_is_shared_and_applies() -> None:
    store = SnapshotStore()
    d = store.delta(A, BOTH)
    assert store.delta(A, BOTH) is d
    assert apply(A, d) == BOTH
