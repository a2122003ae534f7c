"""An Envoy v3 Aggregated Discovery Service (state of the world) serving a :class:`~nantian.xds.SnapshotStore`,
so a real Envoy can be a nantian data plane.

Envoy connects with a bootstrap like :func:`nantian.xds.envoy.bootstrap`; its node id shows up in the
:class:`~nantian.xds.NodeRegistry` like any data plane's. A node may serve only some Gateways: node metadata
``gateways: "ns/a,ns/b"``; listener ports get node metadata ``port_offset`` added (else the server's
``port_offset``), as ``nantian proxy --port-offset`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from nantian.ir import Snapshot
from nantian.xds._lru import Lru
from nantian.xds.envoy._ads import AdsSession, Changed, Nacked, Request, Respond, TypeAcked
from nantian.xds.envoy.resources import resources
from nantian.xds.registry import NodeRecord, NodeRegistry
from nantian.xds.server import GRPC_OPTIONS
from nantian.xds.store import SnapshotStore
from nantian.xds.tls import ServerTls

__all__ = ["EnvoyAdsServer"]

log = logging.getLogger(__name__)


class _End:
    pass


class EnvoyAdsServer:
    """Serves ``store`` to Envoy proxies over ADS. Same shape as :class:`~nantian.xds.XdsServer`."""

    def __init__(
        self,
        store: SnapshotStore,
        *,
        address: str = "127.0.0.1:0",
        tls: ServerTls | None = None,
        registry: NodeRegistry | None = None,
        port_offset: int = 0,
    ) -> None:
        self.store = store
        self.tls = tls
        self.registry = registry if registry is not None else NodeRegistry()
        self.port_offset = port_offset
        self.port: int | None = None
        self._listen = address
        self._server: grpc.aio.Server | None = None
        self._resources: Lru[tuple[str, int], dict[str, list[Any]]] = Lru(8)

    @property
    def address(self) -> str:
        host = self._listen.rsplit(":", 1)[0]
        if host in ("0.0.0.0", "[::]", ""):
            host = "127.0.0.1"
        return f"{host}:{self.port if self.port is not None else self._listen.rsplit(':', 1)[-1]}"

    async def start(self) -> None:
        server = grpc.aio.server(options=GRPC_OPTIONS)
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(_Servicer(self), server)
        try:
            if self.tls is None:
                port = server.add_insecure_port(self._listen)
            else:
                port = server.add_secure_port(self._listen, self.tls.credentials())
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {self._listen}: {exc}") from exc
        if port == 0:
            raise OSError(f"cannot listen on {self._listen}")
        await server.start()
        self._server, self.port = server, int(port)
        log.info("envoy_ads.listening address=%s port=%s", self._listen, port)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(1.0)
            self._server = None

    def _changed(self, view: Snapshot, offset: int) -> Changed:
        found = self._resources.get((view.version, offset))
        if found is None:
            found = resources(view, offset)
            self._resources.put((view.version, offset), found)
        return Changed(view.version, found)

    async def stream(self, requests: AsyncIterator[Any], context: Any) -> None:
        """Serve one StreamAggregatedResources call."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        session = AdsSession()
        record: NodeRecord | None = None
        gateways: frozenset[str] = frozenset()
        offset = self.port_offset
        watcher: asyncio.Task[None] | None = None
        reader = asyncio.create_task(self._read(requests, queue))
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _End):
                    return
                if isinstance(item, Changed):
                    commands = session.handle(item)
                else:
                    if record is None:
                        if not item.node.id:
                            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first request names no node")
                            return
                        gateways = _gateways(item.node)
                        offset = _port_offset(item.node, self.port_offset)
                        record = self.registry.connect(
                            item.node.id,
                            build=item.node.user_agent_name + "/" + item.node.user_agent_version,
                            gateways=tuple(sorted(gateways)),
                            peer=context.peer() or "",
                            transport="envoy",
                        )
                        log.info("envoy_ads.connected node=%s gateways=%s", item.node.id, ",".join(gateways) or "*")
                        generation = self.store.generation
                        view = self.store.view(gateways)
                        if view is not None:
                            session.handle(self._changed(view, offset))
                        watcher = asyncio.create_task(self._watch(gateways, offset, generation, queue))
                    error = item.error_detail.message if item.HasField("error_detail") else None
                    commands = session.handle(Request(item.type_url, item.version_info, item.response_nonce, error))
                for command in commands:
                    assert record is not None
                    await self._execute(command, record, context)
        finally:
            reader.cancel()
            if watcher is not None:
                watcher.cancel()
            if record is not None:
                self.registry.disconnect(record)
                log.info("envoy_ads.disconnected node=%s", record.node_id)

    async def _execute(self, command: Respond | TypeAcked | Nacked, record: NodeRecord, context: Any) -> None:
        match command:
            case Respond(type_url, version, nonce, items):
                response = discovery_pb2.DiscoveryResponse(
                    version_info=version, type_url=type_url, nonce=nonce, resources=list(items)
                )
                await context.write(response)
                self.registry.sent(record, version, response.ByteSize())
            case TypeAcked(_, version, everything):
                if everything:
                    self.registry.acked(record, version)
            case Nacked(type_url, version, detail):
                self.registry.nacked(record, version, f"{type_url.rsplit('.', 1)[-1]}: {detail}")
                log.warning("envoy_ads.nacked node=%s version=%s detail=%s", record.node_id, version, detail)

    async def _read(self, requests: AsyncIterator[Any], queue: asyncio.Queue[Any]) -> None:
        try:
            async for request in requests:
                queue.put_nowait(request)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            log.debug("envoy_ads.read_failed error=%r", exc)
        finally:
            queue.put_nowait(_End())

    async def _watch(self, gateways: frozenset[str], offset: int, generation: int, queue: asyncio.Queue[Any]) -> None:
        while True:
            generation = await self.store.wait(generation)
            view = self.store.view(gateways)
            if view is not None:
                queue.put_nowait(self._changed(view, offset))


def _gateways(node: Any) -> frozenset[str]:
    field = node.metadata.fields.get("gateways")
    if field is None:
        return frozenset()
    return frozenset(x.strip() for x in field.string_value.split(",") if x.strip())


def _port_offset(node: Any, default: int) -> int:
    field = node.metadata.fields.get("port_offset")
    if field is None:
        return default
    try:
        return int(field.number_value if field.HasField("number_value") else field.string_value)
    except ValueError:
        log.warning("envoy_ads.bad_port_offset node=%s value=%r", node.id, field)
        return default


class _Servicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, server: EnvoyAdsServer) -> None:
        self._server = server

    async def StreamAggregatedResources(self, request_iterator: Any, context: Any) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._server.stream(request_iterator, context)
