"""The built-in transports pass nantian.testing.transport.check_transport, found through the plugin hook."""

from __future__ import annotations

import asyncio

import pytest

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

    from nantian.testing.transport import RecordingConsumer
    from nantian.xds.envoy import EnvoyAdsServer

    transport = _transport("envoy")
    assert isinstance(transport.server(SnapshotStore(), ServerOptions()), EnvoyAdsServer)
    with pytest.raises(ValueError, match="Envoy processes"):
        transport.client(RecordingConsumer(), ClientOptions(node_id="n"))


def test_envoy_bootstrap_printer(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from nantian.xds.envoy.__main__ import main

    assert main(["--node-id", "e1", "--xds", "10.0.0.1:18080", "--gateway", "ns/a", "--port-offset", "7"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["node"] == {"id": "e1", "cluster": "nantian", "metadata": {"gateways": "ns/a", "port_offset": 7}}
    (cluster,) = doc["static_resources"]["clusters"]
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert address == {"address": "10.0.0.1", "port_value": 18080}
    assert "transport_socket" not in cluster
