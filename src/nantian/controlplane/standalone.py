"""``nantian standalone``: file source, translator and proxy in one process, joined by the in-process transport.

With ``--workers N`` (N > 1) the proxy runs in N worker processes instead: this process keeps the source, the
translator and the admin API, serves the snapshots on a local gRPC config server (127.0.0.1, a free port), and
supervises N ``nantian proxy`` workers (node ids ``standalone-worker-0`` ..) that stream from it and share the
listener ports through ``SO_REUSEPORT`` (:mod:`nantian.proxy.workers`). Their acks show in ``/api/v1/nodes``;
``/readyz`` waits for every worker; SIGTERM drains them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from prometheus_client import generate_latest

from nantian.admin import AdminServer
from nantian.controlplane.metrics import ControlPlaneMetrics
from nantian.controlplane.nodes import node_documents
from nantian.controlplane.reconciler import Reconciled, Reconciler
from nantian.dataplane.app import ProxyOptions, worker_arguments
from nantian.errors import SourceError
from nantian.eventloop import stop_on_signals
from nantian.ir import Snapshot
from nantian.plugins import get_plugin_manager
from nantian.proxy import ProxyRuntime, RuntimeOptions
from nantian.proxy.stream_options import StreamOptions
from nantian.proxy.workers import WorkerChannelServer, WorkerSupervisor, nantian_command
from nantian.translate import TranslateOptions
from nantian.xds.registry import NodeRegistry
from nantian.xds.store import SnapshotStore
from nantian.xds.transport import ClientOptions, ServerOptions, TransportClient

__all__ = ["StandaloneOptions", "run_standalone"]

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class StandaloneOptions:
    config_dir: Path | None = None
    source: str | None = None
    """A source URL (``files:DIR``, ``kubernetes``, a plugin's scheme); default ``files:<config_dir>``."""
    admin_host: str = "127.0.0.1"
    admin_port: int = 19000
    address_pool: str = "127.0.0.0/8"
    port_offset: int = 0
    controller_name: str = "nantian.io/gateway-controller"
    drain_timeout: float = 10.0
    workers: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    """Proxy processes; more than 1 runs them as workers sharing the ports (see the module docstring)."""
    stream: StreamOptions = attrs.field(factory=StreamOptions)
    """TCP/UDP/TLS listeners: ``--stream-idle-timeout``, ``--tls-hello-timeout``, ``--udp-session-timeout``,
    ``--udp-max-sessions`` (passed on to workers too)."""
    access_log: str | None = None
    """``--access-log PATH``: HTTP access lines batched into this file (``-``: standard output), workers too;
    ``None``: through the ``nantian.access`` logger."""

    @property
    def source_url(self) -> str:
        if self.source:
            return self.source
        if self.config_dir is None:
            raise ValueError("standalone needs --config-dir or --source")
        return f"files:{self.config_dir}"


WORKER_NODE_ID = "standalone-worker"
"""Worker ``i`` of ``--workers N`` has node id ``standalone-worker-i``."""


class _State:
    """The admin view of a standalone process."""

    def __init__(
        self,
        reconciler: Reconciler,
        plane: _InProcessPlane | _WorkerPlane,
        metrics: ControlPlaneMetrics,
        registry: NodeRegistry,
    ) -> None:
        self.reconciler = reconciler
        self.plane = plane
        self.metrics = metrics
        self.registry = registry

    def ready(self) -> bool:
        return self.plane.ready(self.registry)

    def resources(self) -> Sequence[Mapping[str, Any]] | None:
        latest = self.reconciler.latest
        return [] if latest is None else latest.objects()

    def snapshot(self) -> Snapshot | None:
        return self.plane.snapshot()

    def nodes(self) -> Sequence[Mapping[str, Any]]:
        documents = node_documents(self.registry)
        if isinstance(self.plane, _WorkerPlane):
            # each worker's own report (pid, admin port, live counters) next to what the config stream knows
            reports = {r.get("nodeId"): r for r in self.plane.channel.reports()}
            for document in documents:
                document["worker"] = reports.get(document["nodeId"])
        return documents

    def metrics_text(self) -> bytes:
        return generate_latest(self.metrics.registry) + self.plane.metrics_text()


class _InProcessPlane:
    """The proxy runtime in this process, fed by the in-process transport."""

    def __init__(self, runtime: ProxyRuntime, client: TransportClient) -> None:
        self.runtime = runtime
        self.client = client
        self._task: asyncio.Task[None] | None = None

    def ready(self, registry: NodeRegistry) -> bool:
        return self.client.version is not None

    def snapshot(self) -> Snapshot | None:
        return self.runtime.snapshot

    def metrics_text(self) -> bytes:
        return generate_latest(self.runtime.metrics_registry)

    async def start(self) -> None:
        self._task = asyncio.create_task(self.client.run(), name="transport-client")

    async def stop(self, drain_timeout: float) -> None:
        await self.client.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 2.0)
        await self.runtime.drain(drain_timeout)


class _WorkerPlane:
    """N ``nantian proxy`` worker processes streaming from this process's gRPC config server."""

    def __init__(self, options: StandaloneOptions, store: SnapshotStore) -> None:
        self.count = options.workers
        self._options = options
        self._store = store
        self.channel = WorkerChannelServer()
        self.supervisor: WorkerSupervisor | None = None
        self._ready = False

    def ready(self, registry: NodeRegistry) -> bool:
        """Once every worker acked a snapshot (a worker restarting later does not unready the others)."""
        if not self._ready:
            records = [registry.get(f"{WORKER_NODE_ID}-{i}") for i in range(self.count)]
            self._ready = all(r is not None and r.connected and r.version_acked is not None for r in records)
        return self._ready

    def snapshot(self) -> Snapshot | None:
        return self._store.current

    def metrics_text(self) -> bytes:
        supervisor = b"" if self.supervisor is None else generate_latest(self.supervisor.metrics_registry)
        return supervisor + generate_latest(self.channel.metrics_registry)

    async def start(self, xds_address: str) -> None:
        await self.channel.start()
        proxy = ProxyOptions(
            xds_address=xds_address,
            node_id=WORKER_NODE_ID,
            port_offset=self._options.port_offset,
            admin_host="127.0.0.1",
            drain_timeout=self._options.drain_timeout,
            stream=self._options.stream,
            access_log=self._options.access_log,
        )
        self.supervisor = WorkerSupervisor(
            self.count, lambda i: nantian_command("proxy", *worker_arguments(proxy, i, self.channel.path))
        )
        await self.supervisor.start()

    async def stop(self, drain_timeout: float) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop(drain_timeout + 5.0)
        await self.channel.close()


async def run_standalone(options: StandaloneOptions, *, stop: asyncio.Event | None = None) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT), then drain in-flight requests and return 0."""
    pm = get_plugin_manager()
    url = options.source_url
    try:
        source = pm.hook.nantian_resource_source(url=url)
    except SourceError as exc:
        log.error("standalone.source_failed url=%s error=%s", url, exc)
        return 2
    if source is None:
        log.error("standalone.no_source url=%s", url)
        return 2
    transport_name = "grpc" if options.workers > 1 else "inprocess"
    transport = pm.hook.nantian_transport(name=transport_name)
    if transport is None:
        log.error("standalone.no_transport name=%s", transport_name)
        return 2
    metrics = ControlPlaneMetrics()
    stop = stop or asyncio.Event()
    store, registry = SnapshotStore(), NodeRegistry()
    plane: _InProcessPlane | _WorkerPlane
    if options.workers > 1:
        server = transport.server(
            store, ServerOptions(address="127.0.0.1:0", registry=registry, metrics_registry=metrics.registry)
        )
        plane = _WorkerPlane(options, store)
    else:
        server = transport.server(store, ServerOptions(registry=registry))
        runtime = ProxyRuntime(
            RuntimeOptions(
                port_offset=options.port_offset,
                node_id="standalone",
                stream=options.stream,
                access_log_path=options.access_log,
            )
        )
        plane = _InProcessPlane(runtime, transport.client(runtime, ClientOptions(node_id="standalone")))
    await server.start()

    async def publish(result: Reconciled) -> None:
        metrics.observe(result)
        store.publish(result.snapshot)

    translate_options = TranslateOptions(controller_name=options.controller_name, address_pool=options.address_pool)
    sinks = [s for group in pm.hook.nantian_status_sinks(url=url) for s in (group or ())]
    reconciler = Reconciler(source, translate_options, publish, sinks=sinks)
    state = _State(reconciler, plane, metrics, registry)
    admin = AdminServer(state, options.admin_host, options.admin_port)
    try:
        await admin.start()
    except OSError as exc:
        log.error("standalone.admin_failed address=%s:%s error=%s", options.admin_host, options.admin_port, exc)
        await server.stop()
        return 2

    remove_signal_handlers = stop_on_signals(stop)
    log.info(
        "standalone.started source=%s admin=%s:%s workers=%s", url, options.admin_host, admin.port, options.workers
    )
    if isinstance(plane, _WorkerPlane):
        await plane.start(server.address)
    else:
        await plane.start()
    reconcile_task = asyncio.create_task(reconciler.run(), name="reconciler")
    stop_task = asyncio.create_task(stop.wait(), name="stop")
    try:
        done, _ = await asyncio.wait({reconcile_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if reconcile_task in done:
            # The source ended or failed: the proxy keeps serving its last good config until told to stop.
            if reconcile_task.exception() is not None:
                log.error("standalone.source_failed", exc_info=reconcile_task.exception())
            await stop.wait()
    finally:
        log.info("standalone.draining timeout=%s", options.drain_timeout)
        reconcile_task.cancel()
        stop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reconcile_task
        await plane.stop(options.drain_timeout)
        await server.stop()
        with contextlib.suppress(Exception):
            await source.aclose()
        await admin.close()
        remove_signal_handlers()
    log.info("standalone.stopped")
    return 0
