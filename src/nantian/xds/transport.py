"""Transports: how snapshots in a :class:`SnapshotStore` reach a :class:`ConfigConsumer`.

A :class:`Transport` makes the two ends: :meth:`Transport.server` on the control plane (serving a store)
and :meth:`Transport.client` on the data plane (driving a consumer). Plugins provide transports through the
``nantian_transport(name)`` hook; the built-ins are ``inprocess`` (:class:`InProcessTransport`, both ends in one
process: the store feeds the consumer directly) and ``grpc`` (:class:`GrpcTransport`, gateway.control.v1).
:func:`nantian.testing.transport.check_transport` checks a transport's behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

import attrs
import prometheus_client

from nantian.errors import ConfigRejected
from nantian.ir import Snapshot
from nantian.xds._session import (
    Accepted,
    AckReceived,
    Command,
    ConfigChanged,
    HelloReceived,
    NackReceived,
    Rejected,
    SendDelta,
    SendSnapshot,
    ServerSession,
    Tick,
)
from nantian.xds.consumer import ConfigConsumer, status_of
from nantian.xds.registry import NodeRecord, NodeRegistry
from nantian.xds.status import STATUS_POLL
from nantian.xds.store import SnapshotStore
from nantian.xds.tls import ClientTls, ServerTls

__all__ = [
    "ClientOptions",
    "EnvoyTransport",
    "GrpcTransport",
    "InProcessClient",
    "InProcessServer",
    "InProcessTransport",
    "ServerOptions",
    "Transport",
    "TransportClient",
    "TransportServer",
]

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class ServerOptions:
    """The control plane's end. ``address`` is ``host:port`` for network transports (port 0 picks one)."""

    address: str = "127.0.0.1:0"
    tls: ServerTls | None = None
    registry: NodeRegistry = attrs.field(factory=NodeRegistry, eq=False)
    metrics_registry: prometheus_client.CollectorRegistry | None = attrs.field(default=None, eq=False)
    retry_rejected: float | None = 30.0
    """Seconds before a version a data plane refused is offered to it again (doubling); ``None``: never."""


@attrs.frozen(kw_only=True)
class ClientOptions:
    """The data plane's end: who it is, which Gateways it serves (all when empty), where the server is."""

    node_id: str
    address: str = ""
    gateways: tuple[str, ...] = ()
    tls: ClientTls | None = None
    snapshot: Snapshot | None = None
    """The configuration the consumer already serves, if any (a returning node asks only for a delta)."""


class TransportServer(Protocol):
    """Serves a store to data planes until stopped."""

    @property
    def address(self) -> str:
        """Where clients connect (``host:port`` with the bound port once started)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class TransportClient(Protocol):
    """Feeds a consumer from a server until closed; keeps the last good configuration on any failure."""

    @property
    def version(self) -> str | None:
        """Version of the last good (applied and acknowledged) configuration."""
        ...

    @property
    def last_error(self) -> str | None:
        """Why the last refused configuration was refused."""
        ...

    async def run(self) -> None:
        """Stream configuration until :meth:`close`; run it as a task."""
        ...

    async def close(self) -> None: ...

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds, checked on every state change (bound it with ``asyncio.timeout``)."""
        ...


class Transport(Protocol):
    """Makes the two ends of one way of moving snapshots."""

    name: str

    def server(self, store: SnapshotStore, options: ServerOptions) -> TransportServer: ...

    def client(self, consumer: ConfigConsumer, options: ClientOptions) -> TransportClient: ...


# --- grpc ------------------------------------------------------------------------------------------
class GrpcTransport:
    """gateway.control.v1 over gRPC: :class:`~nantian.xds.server.XdsServer` and
    :class:`~nantian.xds.client.XdsClient`."""

    name = "grpc"

    def server(self, store: SnapshotStore, options: ServerOptions) -> TransportServer:
        from nantian.xds.server import XdsServer

        return XdsServer(
            store,
            address=options.address,
            tls=options.tls,
            registry=options.registry,
            metrics_registry=options.metrics_registry,
            retry_rejected=options.retry_rejected,
        )

    def client(self, consumer: ConfigConsumer, options: ClientOptions) -> TransportClient:
        from nantian.xds.client import XdsClient

        if not options.address:
            raise ValueError("the grpc transport needs the control plane's address (host:port)")
        return XdsClient(
            options.address,
            consumer,
            node_id=options.node_id,
            gateways=options.gateways,
            tls=options.tls,
            snapshot=options.snapshot,
        )


# --- envoy ---------------------------------------------------------------------------------------
class EnvoyTransport:
    """Envoy v3 ADS (:class:`~nantian.xds.envoy.EnvoyAdsServer`): the data plane is an Envoy process started with
    :func:`nantian.xds.envoy.bootstrap`, so this transport has no client of its own."""

    name = "envoy"

    def server(self, store: SnapshotStore, options: ServerOptions) -> TransportServer:
        from nantian.xds.envoy.server import EnvoyAdsServer

        return EnvoyAdsServer(store, address=options.address, tls=options.tls, registry=options.registry)

    def client(self, consumer: ConfigConsumer, options: ClientOptions) -> TransportClient:
        raise ValueError("the envoy transport's data planes are Envoy processes: see nantian.xds.envoy.bootstrap")


# --- in-process ------------------------------------------------------------------------------------
class InProcessServer:
    """The in-process end of a store: nothing to bind."""

    def __init__(self, store: SnapshotStore, registry: NodeRegistry, retry_rejected: float | None = None) -> None:
        self.store = store
        self.registry = registry
        self.retry_rejected = retry_rejected

    @property
    def address(self) -> str:
        return "inprocess"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class InProcessClient:
    """Applies the store's snapshots to the consumer directly, with the same ack/nack rules as a stream.

    A refused snapshot is recorded as a Nack in the registry; the consumer keeps the last good one; a newer
    snapshot is applied as usual, and a refused one that is still the newest is retried after the server's
    ``retry_rejected`` seconds (doubling). The consumer's status (version, listeners, counters) is reported to the
    registry after every apply or refusal and every ``status_interval`` seconds while running, as a gRPC data
    plane's periodic status reports.
    """

    def __init__(
        self,
        server: InProcessServer,
        consumer: ConfigConsumer,
        options: ClientOptions,
        *,
        status_interval: float = STATUS_POLL,
    ) -> None:
        if status_interval <= 0:
            raise ValueError(f"status_interval must be positive, not {status_interval}")
        self._server = server
        self.consumer = consumer
        self.options = options
        self.status_interval = status_interval
        self.snapshot = options.snapshot
        self.last_error: str | None = None
        self.applied = 0
        self.rejected = 0
        self._changed = asyncio.Condition()
        self._closed = asyncio.Event()

    @property
    def version(self) -> str | None:
        return None if self.snapshot is None else self.snapshot.version

    async def close(self) -> None:
        self._closed.set()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        async with self._changed:
            await self._changed.wait_for(condition)

    async def run(self) -> None:
        store, registry = self._server.store, self._server.registry
        retry = self._server.retry_rejected
        tick = None if retry is None else max(0.05, min(5.0, retry / 2))
        gateways = frozenset(self.options.gateways)
        session = ServerSession(retry_after=retry)
        record = registry.connect(
            self.options.node_id, gateways=tuple(sorted(gateways)), peer="inprocess", transport="inprocess"
        )
        closed = asyncio.create_task(self._closed.wait())
        reporter = asyncio.create_task(self._report_forever(registry, record), name="inprocess-status")
        try:
            held = self.snapshot
            commands = session.handle(HelloReceived(self.options.node_id, gateways, held.version if held else "", held))
            generation = store.generation
            while not self._closed.is_set():
                view = store.view(gateways)
                if view is not None:
                    commands += session.handle(ConfigChanged(view))
                while commands:
                    command, *commands = commands
                    commands += await self._execute(command, session, registry, record)
                waiter = asyncio.create_task(store.wait(generation))
                done, _ = await asyncio.wait({waiter, closed}, timeout=tick, return_when=asyncio.FIRST_COMPLETED)
                if waiter in done:
                    generation = waiter.result()
                    continue
                waiter.cancel()
                if closed not in done:
                    commands += session.handle(Tick(time.monotonic()))
        finally:
            closed.cancel()
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            registry.disconnect(record)

    async def _report_forever(self, registry: NodeRegistry, record: NodeRecord) -> None:
        """Report the consumer's status every ``status_interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.status_interval)
            self._report(registry, record)

    def _report(self, registry: NodeRegistry, record: NodeRecord) -> None:
        """Record the consumer's status now (a failure to take it is logged: the next report may succeed)."""
        try:
            registry.reported(record, status_of(self.consumer, self.version))
        except Exception:  # a consumer bug must not stop the reports, nor the config stream
            log.exception("inprocess.report_failed node=%s", record.node_id)

    async def _execute(
        self, command: Command, session: ServerSession, registry: NodeRegistry, record: NodeRecord
    ) -> list[Command]:
        match command:
            case SendSnapshot(snapshot, nonce) | SendDelta(_, snapshot, nonce):
                registry.sent(record, snapshot.version, 0)
                try:
                    await self.consumer.apply(snapshot)
                except ConfigRejected as exc:
                    detail = str(exc)
                    self.last_error = detail
                    self.rejected += 1
                    log.warning(
                        "inprocess.rejected version=%s serving=%s detail=%s", snapshot.version, self.version, detail
                    )
                    event: AckReceived | NackReceived = NackReceived(
                        snapshot.version, nonce, detail, now=time.monotonic()
                    )
                else:
                    self.snapshot = snapshot
                    self.applied += 1
                    log.info("inprocess.applied version=%s", snapshot.version)
                    event = AckReceived(snapshot.version, nonce)
                self._report(registry, record)
                async with self._changed:
                    self._changed.notify_all()
                return session.handle(event)
            case Accepted(version):
                registry.acked(record, version)
            case Rejected(version, detail, _):
                registry.nacked(record, version, detail)
        return []


class InProcessTransport:
    """Both ends in one process (``nantian standalone``): make the server first, then the client."""

    name = "inprocess"

    def __init__(self, *, status_interval: float = STATUS_POLL) -> None:
        self.status_interval = status_interval
        """Seconds between the client's status reports (see :data:`~nantian.xds.status.STATUS_POLL`)."""
        self._server: InProcessServer | None = None

    def server(self, store: SnapshotStore, options: ServerOptions) -> TransportServer:
        self._server = InProcessServer(store, options.registry, options.retry_rejected)
        return self._server

    def client(self, consumer: ConfigConsumer, options: ClientOptions) -> TransportClient:
        if self._server is None:
            raise ValueError("make the in-process transport's server (the store's end) before its client")
        return InProcessClient(self._server, consumer, options, status_interval=self.status_interval)
