"""The built-in transports pass nantian.testing.transport.check_transport, found through the plugin hook."""

from __future__ import annotations

import asyncio

from nantian.plugins import make_plugin_manager
from nantian.testing.transport import check_transport
from nantian.xds import ClientOptions, ConfigConsumer, ServerOptions, SnapshotStore, Transport
from nantian.xds.transport import TransportClient, TransportServer


def _transport(name: str) -> Transport:
    transport = make_plugin_manager(entry_points=False).hook.nantian_transport(name=name)
    assert transport is not None and transport.name == name
    return transport  # type: ignore[no-any-return]


def _pair_maker(name: str):  # type: ignore[no-untyped-def]
    async def make_pair(store: SnapshotStore, consumer: ConfigConsumer) -> tuple[TransportServer, TransportClient]:
        transport = _transport(name)
        server = transport.server(store, ServerOptions(address="127.0.0.1:0"))
        await server.start()
        return server, transport.client(consumer, ClientOptions(node_id="n1", address=server.address))

    return make_pair


def test_inprocess_transport_passes_the_check() -> None:
    asyncio.run(check_transport(_pair_maker("inprocess")))


def test_grpc_transport_passes_the_check() -> None:
    asyncio.run(check_transport(_pair_maker("grpc")))


def test_unknown_transport_is_not_provided() -> None:
    assert make_plugin_manager(entry_points=False).hook.nantian_transport(name="pigeon") is None


def test_envoy_transport_serves_but_has_no_python_client() -> None:
    import pytest

    from nantian.testing.transport import RecordingConsumer
    from nantian.xds.envoy import EnvoyAdsServer

    transport = _transport("envoy")
    assert isinstance(transport.server(SnapshotStore(), ServerOptions()), EnvoyAdsServer)
    with pytest.raises(ValueError, match="Envoy processes"):
        transport.client(RecordingConsumer(), ClientOptions(node_id="n"))
