"""The in-process transport: the store feeds the consumer directly, with stream-like ack/nack bookkeeping."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from nantian.testing.transport import RecordingConsumer, sample_snapshot
from nantian.xds import ClientOptions, InProcessTransport, NodeRegistry, ServerOptions, SnapshotStore


async def test_nacks_and_status_reach_the_registry() -> None:
    store, registry = SnapshotStore(), NodeRegistry()
    good, bad = sample_snapshot(1, gateway="ns/a", tag="g"), sample_snapshot(2, gateway="ns/a", tag="b")
    transport = InProcessTransport()
    server = transport.server(store, ServerOptions(registry=registry))
    await server.start()
    consumer = RecordingConsumer(lambda s: "cannot bind" if s.version == bad.version else None)
    client = transport.client(consumer, ClientOptions(node_id="standalone", gateways=("ns/a",)))
    store.publish(good)
    task = asyncio.create_task(client.run())
    try:
        async with asyncio.timeout(5):
            await client.wait_for(lambda: client.version == good.version)
        store.publish(bad)
        async with asyncio.timeout(5):
            await client.wait_for(lambda: client.last_error is not None)
        record = registry.get("standalone")
        assert record is not None and record.transport == "inprocess" and record.gateways == ("ns/a",)
        assert record.version_acked == good.version
        assert record.last_nack is not None and record.last_nack.version == bad.version
        assert record.last_status is not None and record.last_status.version == good.version
        assert consumer.snapshot == good
    finally:
        await client.close()
        async with asyncio.timeout(5):
            await task
        await server.stop()
    assert not registry.get("standalone").connected  # type: ignore[union-attr]


def test_client_before_server_is_refused() -> None:
    with pytest.raises(ValueError, match="server"):
        InProcessTransport().client(RecordingConsumer(), ClientOptions(node_id="x"))


async def test_close_ends_run_promptly() -> None:
    transport = InProcessTransport()
    store = SnapshotStore()
    await transport.server(store, ServerOptions()).start()
    client = transport.client(RecordingConsumer(), ClientOptions(node_id="x"))
    task = asyncio.create_task(client.run())
    await asyncio.sleep(0.01)
    await client.close()
    with contextlib.suppress(asyncio.CancelledError):
        async with asyncio.timeout(2):
            await task
    assert task.done()


async def test_refused_snapshot_is_retried_and_converges() -> None:
    store = SnapshotStore()
    transport = InProcessTransport()
    server = transport.server(store, ServerOptions(retry_rejected=0.1))
    await server.start()
    target = sample_snapshot(1, tag="retry")
    blocked = {target.version}
    consumer = RecordingConsumer(lambda s: "busy" if s.version in blocked else None)
    client = transport.client(consumer, ClientOptions(node_id="n"))
    store.publish(target)
    task = asyncio.create_task(client.run())
    try:
        async with asyncio.timeout(5):
            await client.wait_for(lambda: client.last_error is not None)
        blocked.clear()
        async with asyncio.timeout(5):
            await client.wait_for(lambda: client.version == target.version)
        assert len(consumer.refused) >= 1 and consumer.snapshot == target
    finally:
        await client.close()
        async with asyncio.timeout(5):
            await task
