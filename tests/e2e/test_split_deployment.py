"""The split deployment over real sockets: a controller and two proxies streaming config over gRPC.

Traffic flows through both proxies; a manifest change reaches both as a delta; with the controller gone the
proxies keep serving, and after its restart they reconnect and converge; a port already taken on one proxy
makes it Nack (visible in the controller's /api/v1/nodes) while it keeps serving its last good config.
The apps run in-process (their public start/stop API) so the test controls their lifetimes precisely.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import manifests
import pytest
from processes import eventually, free_port

from nantian.controlplane.controller import Controller, ControllerOptions
from nantian.dataplane import DataPlane, ProxyOptions
from nantian.echo import EchoServer, PodContext, ServeSpec
from nantian.plugins import make_plugin_manager
from nantian.xds._codec import encode_snapshot

pytestmark = pytest.mark.e2e

GATEWAY_PORT = 8080

V2_RULE = (
    "{matches: [{path: {type: PathPrefix, value: /v2}}], filters: [{type: RequestHeaderModifier, "
    "requestHeaderModifier: {set: [{name: x-version, value: two}]}}], backendRefs: [{name: echo, port: 80}]}"
)


def _write(directory: Path, echo_port: int, *, v2: bool = False, extra_port: int | None = None) -> None:
    listeners = [f"{{name: http, port: {GATEWAY_PORT}, protocol: HTTP}}"]
    if extra_port is not None:
        listeners.append(f"{{name: extra, port: {extra_port}, protocol: HTTP}}")
    rules = [manifests.backend_rule("echo"), *([V2_RULE] if v2 else [])]
    apps = [
        doc
        for i in range(8)
        for doc in (
            manifests.http_route(f"app-{i}", manifests.backend_rule(f"app-{i}"), hostnames=(f"app-{i}.example.com",)),
            manifests.backend(f"app-{i}", echo_port),
        )
    ]
    text = manifests.documents(
        manifests.GATEWAY_CLASS,
        manifests.gateway(*listeners),
        manifests.http_route("web", *rules),
        manifests.backend("echo", echo_port),
        *apps,
    )
    manifests.write_atomically(directory / "config.yaml", text)


async def _get(url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as http:
        return await http.get(url, **kwargs)


@contextlib.asynccontextmanager
async def _started(app: Controller | DataPlane) -> AsyncIterator[None]:
    await app.start()
    try:
        yield
    finally:
        await app.stop() if isinstance(app, Controller) else await app.stop(0.5)


async def test_controller_and_two_proxies(tmp_path: Path) -> None:
    pm = make_plugin_manager(entry_points=False)
    async with EchoServer(
        [ServeSpec(context=PodContext(namespace="default", pod="echo-1"), http=("127.0.0.1", 0))]
    ) as echo:
        echo_port = echo.bound[0].port
        _write(tmp_path, echo_port)
        copts = ControllerOptions(config_dir=tmp_path, xds_address="127.0.0.1:0", admin_port=0, retry_rejected=0.5)
        controller = Controller(copts, plugin_manager=pm)
        await controller.start()
        xds = controller.xds_address
        offsets = {"a": free_port() - GATEWAY_PORT, "b": free_port() - GATEWAY_PORT}
        proxies = {
            n: DataPlane(
                ProxyOptions(xds_address=xds, node_id=n, port_offset=offsets[n], admin_port=0), plugin_manager=pm
            )
            for n in offsets
        }
        try:
            async with _started(proxies["a"]), _started(proxies["b"]):
                await _scenario(controller, proxies, offsets, tmp_path, echo_port, pm)
        finally:
            await controller.stop()


async def _scenario(
    controller: Controller,
    proxies: dict[str, DataPlane],
    offsets: dict[str, int],
    config: Path,
    echo_port: int,
    pm: Any,
) -> None:
    def acked(version: str | None) -> bool:
        return version is not None and all(p.runtime.version == version for p in proxies.values())

    await eventually(lambda: acked(controller.store.version), "both proxies serve the first snapshot")
    first = controller.store.current
    assert first is not None
    address = first.listeners[0].address

    async def through(name: str, path: str = "/") -> httpx.Response:
        return await _get(f"http://{address}:{GATEWAY_PORT + offsets[name]}{path}")

    for name in proxies:
        response = await through(name)
        assert response.status_code == 200, response.text
        assert response.json()["pod"] == "echo-1"

    # A manifest change reaches both proxies as one delta each.
    nodes = {r.node_id: (r.messages_sent, r.bytes_sent) for r in controller.registry.nodes()}
    _write(config, echo_port, v2=True)
    await eventually(lambda: controller.store.version != first.version, "the change is translated")
    second = controller.store.version
    await eventually(lambda: acked(second), "both proxies serve the change")
    full = len(encode_snapshot(controller.store.current).SerializeToString()) if controller.store.current else 0
    for record in controller.registry.nodes():
        sent, size = nodes[record.node_id]
        assert record.messages_sent == sent + 1, "one message per change"
        assert record.bytes_sent - size < full / 2, "a delta, smaller than the full snapshot"
    metrics = (await _get(f"http://127.0.0.1:{controller.admin_port}/metrics")).text
    assert 'nantian_xds_messages_sent_total{kind="delta"} 2.0' in metrics
    assert 'nantian_xds_messages_sent_total{kind="snapshot"} 2.0' in metrics
    for name in proxies:
        response = await through(name, "/v2/x")
        assert response.status_code == 200
        assert response.json()["headers"].get("X-Version") in (["two"], "two")

    # The controller goes away: both proxies keep serving.
    await controller.stop()
    await eventually(lambda: not any(_connected(p) for p in proxies.values()), "proxies notice the controller left")
    for name in proxies:
        assert (await through(name, "/v2/y")).status_code == 200

    # Meanwhile the manifests change back; a controller restarted on the same address brings both up to date.
    _write(config, echo_port)
    restarted = Controller(
        ControllerOptions(config_dir=config, xds_address=controller.xds_address, admin_port=0, retry_rejected=0.5),
        plugin_manager=pm,
    )
    async with _started(restarted):
        await eventually(lambda: restarted.store.version is not None, "the restarted controller translates")
        third = restarted.store.version
        assert third == first.version
        await eventually(lambda: acked(third), "both proxies reconnect and converge")
        assert all(_connected(p) for p in proxies.values())

        # A port taken on proxy b's side: b refuses the snapshot and keeps serving; a applies it.
        extra = 9090
        with socket.socket() as squatter:
            squatter.bind((address, extra + offsets["b"]))
            squatter.listen()
            _write(config, echo_port, extra_port=extra)
            await eventually(lambda: restarted.store.version != third, "the new listener is translated")
            fourth = restarted.store.version
            await eventually(lambda: proxies["a"].runtime.version == fourth, "proxy a applies the new listener")
            b_record = restarted.registry.get("b")
            assert b_record is not None
            await eventually(lambda: b_record.last_nack is not None, "proxy b nacks")
            assert proxies["b"].runtime.version == third
            nodes_doc = (await _get(f"http://127.0.0.1:{restarted.admin_port}/api/v1/nodes")).json()["nodes"]
            b_doc = next(n for n in nodes_doc if n["nodeId"] == "b")
            assert b_doc["lastNack"]["version"] == fourth
            assert b_doc["versionAcked"] == third
            assert b_doc["lastNack"]["detail"]
            assert (await through("b")).status_code == 200
            assert (await _get(f"http://{address}:{extra + offsets['a']}/")).status_code == 200
            b_admin = (await _get(f"http://127.0.0.1:{proxies['b'].admin_port}/api/v1/nodes")).json()["nodes"][0]
            assert b_admin["versionAcked"] == third and b_admin["lastNack"]
            b_metrics = (await _get(f"http://127.0.0.1:{proxies['b'].admin_port}/metrics")).text
            assert "nantian_xds_client_rejected_total" in b_metrics
            assert "nantian_xds_client_connected 1.0" in b_metrics
            assert json.loads(json.dumps(b_doc))  # the document is plain JSON
        # The port is free again: the refused config is offered again (--retry-rejected) and b converges.
        await eventually(lambda: proxies["b"].runtime.version == fourth, "proxy b applies it once it can bind")
        assert (await _get(f"http://{address}:{extra + offsets['b']}/")).status_code == 200


def _connected(plane: DataPlane) -> bool:
    return bool(getattr(plane.client, "connected", False))
