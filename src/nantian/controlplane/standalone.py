"""``nantian standalone``: file source, translator and proxy in one process, joined by the in-process transport."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from prometheus_client import CollectorRegistry, generate_latest

from nantian.admin import AdminServer
from nantian.controlplane.metrics import ControlPlaneMetrics
from nantian.controlplane.nodes import node_documents
from nantian.controlplane.reconciler import Reconciled, Reconciler
from nantian.errors import SourceError
from nantian.ir import Snapshot
from nantian.plugins import get_plugin_manager
from nantian.proxy import ProxyRuntime, RuntimeOptions
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

    @property
    def source_url(self) -> str:
        if self.source:
            return self.source
        if self.config_dir is None:
            raise ValueError("standalone needs --config-dir or --source")
        return f"files:{self.config_dir}"


class _State:
    """The admin view of a standalone process."""

    def __init__(
        self,
        reconciler: Reconciler,
        runtime: ProxyRuntime,
        metrics: ControlPlaneMetrics,
        registry: NodeRegistry,
        client: TransportClient,
    ) -> None:
        self.reconciler = reconciler
        self.runtime = runtime
        self.metrics = metrics
        self.registry = registry
        self.client = client

    def ready(self) -> bool:
        return self.client.version is not None

    def resources(self) -> Sequence[Mapping[str, Any]] | None:
        latest = self.reconciler.latest
        return [] if latest is None else latest.objects()

    def snapshot(self) -> Snapshot | None:
        return self.runtime.snapshot

    def nodes(self) -> Sequence[Mapping[str, Any]]:
        return node_documents(self.registry)

    def metrics_text(self) -> bytes:
        runtime_registry = self.runtime.metrics_registry
        assert isinstance(runtime_registry, CollectorRegistry)
        return generate_latest(self.metrics.registry) + generate_latest(runtime_registry)


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
    transport = pm.hook.nantian_transport(name="inprocess")
    if transport is None:
        log.error("standalone.no_transport name=inprocess")
        return 2
    runtime = ProxyRuntime(RuntimeOptions(port_offset=options.port_offset, node_id="standalone"))
    metrics = ControlPlaneMetrics()
    stop = stop or asyncio.Event()
    store, registry = SnapshotStore(), NodeRegistry()
    server = transport.server(store, ServerOptions(registry=registry))
    await server.start()
    client = transport.client(runtime, ClientOptions(node_id="standalone"))

    async def publish(result: Reconciled) -> None:
        metrics.observe(result)
        store.publish(result.snapshot)

    translate_options = TranslateOptions(controller_name=options.controller_name, address_pool=options.address_pool)
    sinks = [s for group in pm.hook.nantian_status_sinks(url=url) for s in (group or ())]
    reconciler = Reconciler(source, translate_options, publish, sinks=sinks)
    state = _State(reconciler, runtime, metrics, registry, client)
    admin = AdminServer(state, options.admin_host, options.admin_port)
    await admin.start()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    log.info("standalone.started source=%s admin=%s:%s", url, options.admin_host, admin.port)
    client_task = asyncio.create_task(client.run(), name="transport-client")
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
        await client.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(client_task, 2.0)
        await server.stop()
        await runtime.drain(options.drain_timeout)
        with contextlib.suppress(Exception):
            await source.aclose()
        await admin.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    log.info("standalone.stopped")
    return 0
