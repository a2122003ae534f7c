"""The admin server answers its contract over a real loopback socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from nantian import ir
from nantian.admin import AdminServer, handle_request


class _State:
    def __init__(self) -> None:
        self.is_ready = False
        self.snap: ir.Snapshot | None = None

    def ready(self) -> bool:
        return self.is_ready

    def resources(self) -> Sequence[Mapping[str, Any]] | None:
        return [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "infra"}},
            {"kind": "Gateway", "metadata": {"namespace": "infra", "name": "gw"}, "status": {"conditions": []}},
        ]

    def snapshot(self) -> ir.Snapshot | None:
        return self.snap

    def nodes(self) -> Sequence[Mapping[str, Any]]:
        return [{"nodeId": "n1"}]

    def metrics_text(self) -> bytes:
        return b"# HELP x y\nx 1\n"


def test_routes_of_the_contract() -> None:
    state = _State()
    assert handle_request(state, "GET", "/readyz")[0] == 503
    state.is_ready = True
    assert handle_request(state, "GET", "/readyz")[0] == 200
    status, _, body = handle_request(state, "GET", "/api/v1/resources/gateway/infra/gw")
    assert status == 200 and json.loads(body)["metadata"]["name"] == "gw"
    assert handle_request(state, "GET", "/api/v1/resources/Namespace/infra")[0] == 200
    assert handle_request(state, "GET", "/api/v1/resources/Namespace/-/infra")[0] == 200
    assert handle_request(state, "GET", "/api/v1/resources/Gateway/infra/nope")[0] == 404
    assert handle_request(state, "GET", "/api/v1/snapshot")[0] == 503
    assert handle_request(state, "POST", "/readyz")[0] == 405
    assert handle_request(state, "GET", "/nope")[0] == 404
    assert b"<html" in handle_request(state, "GET", "/")[2]


def test_snapshot_redacts_private_keys() -> None:
    state = _State()
    state.snap = ir.Snapshot.build(secrets=[ir.Secret(name="a/b", certificate_chain="CERT", private_key="KEY")])
    status, _, body = handle_request(state, "GET", "/api/v1/snapshot")
    doc = json.loads(body)
    assert status == 200 and doc["version"] == state.snap.version
    assert doc["snapshot"]["secrets"][0]["privateKey"] == "<redacted>"
    assert b"KEY" not in body


async def test_serves_over_a_socket() -> None:
    state = _State()
    state.is_ready = True
    server = AdminServer(state, "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as client:
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/api/v1/nodes")).json() == {"nodes": [{"nodeId": "n1"}]}
            assert (await client.get("/metrics")).text.startswith("# HELP")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"garbage\r\n\r\n")
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line.startswith(b"HTTP/1.1 400")
        writer.close()
    finally:
        await server.close()
