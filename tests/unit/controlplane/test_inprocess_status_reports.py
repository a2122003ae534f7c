"""The in-process transport reports its consumer's status periodically, so the node registry (``/api/v1/nodes`` of
``nantian standalone``) shows live counters without a configuration change."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping

import pytest

from nantian.ir import Snapshot
from nantian.testing.transport import RecordingConsumer, sample_snapshot
from nantian.xds import ClientOptions, InProcessTransport, NodeRegistry, ServerOptions, SnapshotStore
from nantian.xds.registry import NodeRecord
from nantian.xds.status import STATUS_POLL
from nantian.xds.transport import InProcessClient

INTERVAL = 0.02
WITHIN = 5.0


class CountingConsumer(RecordingConsumer):
    """A recording consumer with a request counter the test moves, and counters() that can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0
        self.failures = 0
        self.fail_after_apply = False
        """Make the report taken right after the next apply fail."""

    async def apply(self, snapshot: Snapshot) -> object:
        result = await super().apply(snapshot)
        if self.fail_after_apply:
            self.fail_after_apply, self.failures = False, 1
        return result

    def counters(self) -> Mapping[str, int]:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("counters broke")
        return {**super().counters(), "requests": self.requests}


async def _eventually(registry: NodeRegistry, check: Callable[[NodeRecord], bool], what: str) -> NodeRecord:
    """The node's record once ``check`` holds for it (polled; bounded by ``WITHIN``)."""
    try:
        async with asyncio.timeout(WITHIN):
            while True:
                record = registry.get("standalone")
                if record is not None and check(record):
                    return record
                await asyncio.sleep(INTERVAL / 2)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@contextlib.asynccontextmanager
async def running(
    consumer: CountingConsumer, registry: NodeRegistry, store: SnapshotStore
) -> AsyncIterator[InProcessClient]:
    transport = InProcessTransport(status_interval=INTERVAL)
    server = transport.server(store, ServerOptions(registry=registry))
    await server.start()
    client = transport.client(consumer, ClientOptions(node_id="standalone"))
    assert isinstance(client, InProcessClient)
    task = asyncio.create_task(client.run())
    try:
        yield client
    finally:
        await client.close()
        async with asyncio.timeout(WITHIN):
            await task
        await server.stop()


async def test_counters_reach_the_registry_without_a_config_change() -> None:
    store, registry, consumer = SnapshotStore(), NodeRegistry(), CountingConsumer()
    snapshot = sample_snapshot(1, tag="live")
    store.publish(snapshot)
    async with running(consumer, registry, store) as client:
        async with asyncio.timeout(WITHIN):
            await client.wait_for(lambda: client.version == snapshot.version)
        first = await _eventually(registry, lambda r: r.last_status is not None, "the first report")
        assert first.last_status is not None and first.last_status.counters["requests"] == 0
        sent = first.messages_sent
        consumer.requests = 42
        record = await _eventually(
            registry,
            lambda r: r.last_status is not None and r.last_status.counters.get("requests") == 42,
            "requests == 42 in the registry",
        )
        assert record.last_status is not None
        assert record.last_status.version == snapshot.version and record.version_acked == snapshot.version
        assert record.messages_sent == sent, "nothing was sent to the data plane"
        assert len(consumer.applied) == 1
        stamp = record.status_at
        await _eventually(registry, lambda r: r.status_at is not None and r.status_at > (stamp or 0), "a newer report")
    # once the client is closed, nothing reports any more
    gone = registry.get("standalone")
    assert gone is not None and not gone.connected
    stamp = gone.status_at
    consumer.requests = 43
    await asyncio.sleep(INTERVAL * 5)
    assert gone.status_at == stamp and gone.last_status is not None and gone.last_status.counters["requests"] == 42


async def test_a_failing_report_does_not_stop_the_next(caplog: pytest.LogCaptureFixture) -> None:
    store, registry, consumer = SnapshotStore(), NodeRegistry(), CountingConsumer()
    store.publish(sample_snapshot(1, tag="fail"))
    async with running(consumer, registry, store) as client:
        async with asyncio.timeout(WITHIN):
            await client.wait_for(lambda: client.version is not None)
        consumer.failures, consumer.requests = 2, 7
        await _eventually(
            registry,
            lambda r: r.last_status is not None and r.last_status.counters.get("requests") == 7,
            "a report after two failed ones",
        )
        assert consumer.failures == 0
        # a report that fails right after an apply does not stop the ack either
        consumer.fail_after_apply = True
        newer = sample_snapshot(2, tag="fail")
        store.publish(newer)
        await _eventually(
            registry,
            lambda r: (
                r.version_acked == newer.version
                and r.last_status is not None
                and r.last_status.version == newer.version
            ),
            "the newer version acked and reported",
        )
    assert "inprocess.report_failed node=standalone" in caplog.text


def test_interval_defaults_to_a_second_and_must_be_positive() -> None:
    assert STATUS_POLL == 1.0 and InProcessTransport().status_interval == 1.0
    transport = InProcessTransport(status_interval=0)
    transport.server(SnapshotStore(), ServerOptions())
    with pytest.raises(ValueError, match="status_interval"):
        transport.client(RecordingConsumer(), ClientOptions(node_id="x"))
