"""A real grpc.aio server and client on 127.0.0.1 with a recording consumer: deltas, nacks, reconnects, mTLS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme

from nantian.ir import Snapshot
from nantian.testing.transport import RecordingConsumer, sample_snapshot
from nantian.xds import Backoff, ClientTls, Health, NodeRegistry, ServerTls, SnapshotStore, XdsClient, XdsServer
from nantian.xds._codec import encode_snapshot, pb, pb_grpc

FAST = Backoff(initial=0.05, maximum=0.2)
WAIT = 10.0


@contextlib.asynccontextmanager
async def running(client: XdsClient) -> AsyncIterator[XdsClient]:
    task = asyncio.create_task(client.run())
    try:
        yield client
    finally:
        await client.close()
        async with asyncio.timeout(5):  # close() alone ends run(), mid-stream or mid-backoff
            await task


async def until(client: XdsClient, condition: Any) -> None:
    async with asyncio.timeout(WAIT):
        await client.wait_for(condition)


async def eventually(condition: Any) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - registry fields have no change event
            await asyncio.sleep(0.02)


async def test_snapshot_then_delta_reach_the_consumer_and_the_registry_follows() -> None:
    store = SnapshotStore()
    server = XdsServer(store)
    await server.start()
    v1, v2 = sample_snapshot(50, tag="a"), sample_snapshot(51, tag="a")
    store.publish(v1)
    consumer = RecordingConsumer(port_offset=1000)
    client = XdsClient(server.address, consumer, node_id="node-1", backoff=FAST, status_poll=0.05)
    try:
        async with running(client):
            await until(client, lambda: client.version == v1.version)
            assert consumer.snapshot == v1
            record = server.registry.get("node-1")
            assert record is not None and record.connected and record.transport == "grpc"
            await eventually(lambda: record.version_acked == v1.version)
            full_bytes = record.bytes_sent

            store.publish(v2)
            await until(client, lambda: client.version == v2.version)
            assert consumer.applied == [v1, v2]
            await eventually(lambda: record.version_acked == v2.version)
            assert record.messages_sent == 2
            delta_bytes = record.bytes_sent - full_bytes
            assert delta_bytes * 10 < full_bytes, "a one-route change must cost a fraction of the full snapshot"

            await eventually(lambda: record.last_status is not None and record.last_status.version == v2.version)
            status = record.last_status
            assert status is not None and status.health is Health.SERVING
            assert [(x.port, x.bound) for x in status.listeners] == [(9080, True)]
            assert status.counters["applied"] == 2
        await eventually(lambda: not record.connected)
    finally:
        await server.stop()


async def test_gateway_filtering_over_the_wire() -> None:
    store = SnapshotStore()
    server = XdsServer(store)
    await server.start()
    a, b = sample_snapshot(2, gateway="ns/a", tag="a"), sample_snapshot(2, gateway="ns/b", port=81, tag="b")
    store.publish(Snapshot.build([*a.listeners, *b.listeners], [*a.clusters, *b.clusters]))
    consumer = RecordingConsumer()
    client = XdsClient(server.address, consumer, node_id="only-b", gateways=["ns/b"], backoff=FAST)
    try:
        async with running(client):
            await until(client, lambda: client.version is not None)
            assert consumer.snapshot == b
            record = server.registry.get("only-b")
            assert record is not None and record.gateways == ("ns/b",)
    finally:
        await server.stop()


async def test_nack_keeps_last_good_is_recorded_and_not_resent() -> None:
    store = SnapshotStore()
    registry = NodeRegistry()
    server = XdsServer(store, registry=registry)
    await server.start()
    good, bad, better = sample_snapshot(1, tag="g"), sample_snapshot(2, tag="bad"), sample_snapshot(3, tag="g")
    consumer = RecordingConsumer(lambda s: "port 8080 in use" if s.version == bad.version else None)
    client = XdsClient(server.address, consumer, node_id="n", backoff=FAST)
    store.publish(good)
    try:
        async with running(client):
            await until(client, lambda: client.version == good.version)
            store.publish(bad)
            await until(client, lambda: client.rejected == 1)
            record = registry.get("n")
            assert record is not None
            await eventually(lambda: record.last_nack is not None)
            assert record.last_nack is not None
            assert record.last_nack.version == bad.version and "8080 in use" in record.last_nack.detail
            assert record.nacks == 1 and record.version_acked == good.version
            assert client.version == good.version and consumer.snapshot == good
            assert client.last_error == "port 8080 in use"
            await asyncio.sleep(0.3)
            assert len(consumer.refused) == 1, "the refused version must not be sent again"

            store.publish(better)
            await until(client, lambda: client.version == better.version)
            assert consumer.snapshot == better
    finally:
        await server.stop()


async def test_control_plane_restart_client_keeps_serving_and_converges() -> None:
    store = SnapshotStore()
    server = XdsServer(store)
    await server.start()
    address = server.address
    v1, v2 = sample_snapshot(3, tag="r"), sample_snapshot(4, tag="r")
    store.publish(v1)
    consumer = RecordingConsumer()
    client = XdsClient(address, consumer, node_id="n", backoff=FAST)
    async with running(client):
        await until(client, lambda: client.version == v1.version)
        await server.stop(grace=0)
        await until(client, lambda: not client.connected)
        await asyncio.sleep(0.3)  # a few failed reconnect attempts
        assert consumer.snapshot == v1 and client.version == v1.version

        # The restarted control plane has a new store that never saw v1: it sends v2 whole.
        fresh = SnapshotStore()
        fresh.publish(v2)
        restarted = XdsServer(fresh, address=address)
        await restarted.start()
        try:
            await until(client, lambda: client.version == v2.version)
            assert consumer.applied == [v1, v2]
            assert client.connects >= 2
            record = restarted.registry.get("n")
            assert record is not None
            await eventually(lambda: record.version_acked == v2.version)
        finally:
            await restarted.stop()


async def test_reconnect_to_a_store_that_remembers_gets_a_delta() -> None:
    store = SnapshotStore()
    server = XdsServer(store)
    await server.start()
    v1, v2 = sample_snapshot(40, tag="m"), sample_snapshot(41, tag="m")
    store.publish(v1)
    first = RecordingConsumer()
    client = XdsClient(server.address, first, node_id="n", backoff=FAST)
    async with running(client):
        await until(client, lambda: client.version == v1.version)
    store.publish(v2)
    second = RecordingConsumer()
    # A new process of the same node that already serves v1 (seeded): it says so in its Hello.
    again = XdsClient(server.address, second, node_id="n", backoff=FAST, snapshot=v1)
    try:
        async with running(again):
            await until(again, lambda: again.version == v2.version)
            record = server.registry.get("n")
            assert record is not None and record.messages_sent == 1
            assert record.bytes_sent * 10 < len(encode_snapshot(v2).SerializeToString())
    finally:
        await server.stop()


class _BadServer(pb_grpc.ConfigurationDiscoveryServiceServicer):  # type: ignore[misc]
    """Sends a snapshot whose resource body is garbage, then a delta from a base the client does not hold."""

    def __init__(self) -> None:
        self.replies: list[Any] = []

    async def StreamConfiguration(self, request_iterator: Any, context: Any) -> Any:
        hello = await anext(request_iterator)
        assert hello.WhichOneof("message") == "hello"
        message = encode_snapshot(sample_snapshot(1, tag="x"), "1")
        message.resources[0].body = b'{"broken": true}'
        yield pb.ControlPlaneMessage(snapshot=message)
        yield pb.ControlPlaneMessage(delta=pb.Delta(base_version="elsewhere", version="v9", nonce="2"))
        async for reply in request_iterator:
            if reply.WhichOneof("message") in ("ack", "nack"):
                self.replies.append(reply)
            if len(self.replies) == 2:
                return


async def test_client_nacks_what_it_cannot_decode_or_apply() -> None:
    bad = _BadServer()
    server = grpc.aio.server()
    pb_grpc.add_ConfigurationDiscoveryServiceServicer_to_server(bad, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    consumer = RecordingConsumer()
    client = XdsClient(f"127.0.0.1:{port}", consumer, node_id="n", backoff=FAST)
    try:
        async with running(client):
            await eventually(lambda: len(bad.replies) == 2)
        first, second = (r.nack for r in bad.replies)
        assert first.nonce == "1" and "cannot decode" in first.error_detail and not first.resync
        assert second.nonce == "2" and second.resync
        assert consumer.applied == [] and client.version is None
    finally:
        await server.stop(0)


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([pb.DataPlaneMessage(ack=pb.Ack(version="v", nonce="1"))], grpc.StatusCode.FAILED_PRECONDITION),
        ([pb.DataPlaneMessage(hello=pb.Hello())], grpc.StatusCode.INVALID_ARGUMENT),
        (
            [pb.DataPlaneMessage(hello=pb.Hello(node_id="n")), pb.DataPlaneMessage(hello=pb.Hello(node_id="n"))],
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
    ],
)
async def test_protocol_violation_ends_the_stream(messages: list[Any], code: grpc.StatusCode) -> None:
    server = XdsServer(SnapshotStore())
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            call = pb_grpc.ConfigurationDiscoveryServiceStub(channel).StreamConfiguration()
            for message in messages:
                await call.write(message)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async with asyncio.timeout(WAIT):
                    await call.read()
            assert info.value.code() is code
        assert all(not r.connected for r in server.registry.nodes())
        assert [r.node_id for r in server.registry.nodes()] in ([], ["n"])
    finally:
        await server.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca, other_ca = trustme.CA(), trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("node-1.data-plane")
    stranger = other_ca.issue_cert("intruder")
    files = {
        "ca": ca.cert_pem,
        "server_cert": server_cert.cert_chain_pems[0],
        "server_key": server_cert.private_key_pem,
        "client_cert": client_cert.cert_chain_pems[0],
        "client_key": client_cert.private_key_pem,
        "stranger_cert": stranger.cert_chain_pems[0],
        "stranger_key": stranger.private_key_pem,
    }
    out = {}
    for name, blob in files.items():
        out[name] = d / f"{name}.pem"
        blob.write_to_path(str(out[name]))
    return out


async def test_mtls_admits_only_clients_with_a_certificate_from_the_ca(pki: dict[str, Path]) -> None:
    store = SnapshotStore()
    store.publish(sample_snapshot(1, tag="tls"))
    tls = ServerTls(cert=pki["server_cert"], key=pki["server_key"], client_ca=pki["ca"])
    server = XdsServer(store, tls=tls)
    await server.start()
    try:
        good = XdsClient(
            server.address,
            RecordingConsumer(),
            node_id="trusted",
            backoff=FAST,
            tls=ClientTls(ca=pki["ca"], cert=pki["client_cert"], key=pki["client_key"]),
        )
        async with running(good):
            await until(good, lambda: good.version is not None)

        for name, tls_options in (
            ("stranger", ClientTls(ca=pki["ca"], cert=pki["stranger_cert"], key=pki["stranger_key"])),
            ("anonymous", ClientTls(ca=pki["ca"])),
        ):
            client = XdsClient(server.address, RecordingConsumer(), node_id=name, backoff=FAST, tls=tls_options)
            async with running(client):
                await asyncio.sleep(0.5)
                assert client.version is None
            assert server.registry.get(name) is None
        plain = XdsClient(server.address, RecordingConsumer(), node_id="plaintext", backoff=FAST)
        async with running(plain):
            await asyncio.sleep(0.3)
            assert plain.version is None
    finally:
        await server.stop()


def test_client_tls_needs_cert_and_key_together(pki: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="both"):
        ClientTls(ca=pki["ca"], cert=pki["client_cert"])


def test_server_refuses_an_address_it_cannot_bind() -> None:
    async def scenario() -> None:
        server = XdsServer(SnapshotStore(), address="192.0.2.1:1")  # TEST-NET-1: not a local address
        with pytest.raises(OSError, match=r"192\.0\.2\.1"):
            await server.start()

    asyncio.run(scenario())


async def test_status_reports_listeners_that_failed_to_bind() -> None:
    store = SnapshotStore()
    server = XdsServer(store)
    await server.start()
    a = sample_snapshot(1, gateway="ns/a", port=80, tag="a")
    b = sample_snapshot(1, gateway="ns/b", port=81, tag="b")
    store.publish(Snapshot.build([*a.listeners, *b.listeners], [*a.clusters, *b.clusters]))
    consumer = RecordingConsumer(unbound={"ns/b/81/HTTP": "address already in use"})
    client = XdsClient(server.address, consumer, node_id="n", backoff=FAST)
    try:
        async with running(client):
            await eventually(lambda: server.registry.get("n") is not None)
            record = server.registry.get("n")
            assert record is not None
            await eventually(lambda: record.last_status is not None and record.last_status.version is not None)
            status = record.last_status
            assert status is not None and status.health is Health.DEGRADED
            failed = [x for x in status.listeners if not x.bound]
            assert [(x.name, x.error) for x in failed] == [("ns/b/81/HTTP", "address already in use")]
    finally:
        await server.stop()


async def test_refused_version_is_offered_again_and_converges_once_it_applies() -> None:
    store = SnapshotStore()
    server = XdsServer(store, retry_rejected=0.2)
    await server.start()
    good, later = sample_snapshot(1, tag="r1"), sample_snapshot(2, tag="r1")
    blocked = {later.version}
    consumer = RecordingConsumer(lambda s: "port in use" if s.version in blocked else None)
    client = XdsClient(server.address, consumer, node_id="n", backoff=FAST)
    store.publish(good)
    try:
        async with running(client):
            await until(client, lambda: client.version == good.version)
            store.publish(later)
            await until(client, lambda: client.rejected >= 1)
            blocked.clear()  # the port is free now
            await until(client, lambda: client.version == later.version)
            record = server.registry.get("n")
            assert record is not None
            await eventually(lambda: record.version_acked == later.version)
            assert record.nacks >= 1
    finally:
        await server.stop()


class _Serving(RecordingConsumer):
    """A consumer whose request counter moves while its configuration does not (a proxy under load)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def counters(self) -> dict[str, int]:
        return {**super().counters(), "requests": self.requests}


async def test_counters_reach_the_control_plane_without_a_config_change() -> None:
    store = SnapshotStore()
    server = XdsServer(store)
    await server.start()
    store.publish(sample_snapshot(1, tag="c"))
    consumer = _Serving()
    client = XdsClient(server.address, consumer, node_id="busy", backoff=FAST, status_poll=0.05, counters_interval=0.2)
    try:
        async with running(client):
            await until(client, lambda: client.version is not None)
            record = server.registry.get("busy")
            assert record is not None
            await eventually(lambda: record.last_status is not None)
            first = record.last_status
            assert first is not None and first.counters["requests"] == 0
            consumer.requests = 25  # served, nothing else changed: only the counters interval lets it through
            await eventually(lambda: record.last_status is not None and record.last_status.counters["requests"] == 25)
            assert record.messages_sent == 1  # the control plane sent nothing new
            reports = record.last_status
            await asyncio.sleep(0.5)  # unchanged counters: no new report (the 30 s heartbeat is far away)
            assert record.last_status is reports
    finally:
        await server.stop()
