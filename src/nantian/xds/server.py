"""The gateway.control.v1 server on grpc.aio: one stream per data plane, fed from a :class:`SnapshotStore`.

Decisions (what to send, ack/nack bookkeeping) are :class:`~nantian.xds._session.ServerSession`'s; this
module moves messages, encodes them once per version (every node moving between the same versions shares
the bytes), keeps the :class:`~nantian.xds.registry.NodeRegistry` current and counts in Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import prometheus_client

from nantian.ir import Snapshot
from nantian.xds._codec import decode_status, encode_delta, encode_snapshot, pb, pb_grpc
from nantian.xds._lru import Lru
from nantian.xds._session import (
    Accepted,
    AckReceived,
    Close,
    Command,
    ConfigChanged,
    Event,
    HelloReceived,
    NackReceived,
    Rejected,
    SendDelta,
    SendSnapshot,
    ServerSession,
    Stale,
    Tick,
)
from nantian.xds.registry import NodeRecord, NodeRegistry
from nantian.xds.store import SnapshotStore
from nantian.xds.tls import ServerTls

__all__ = ["GRPC_OPTIONS", "XdsServer"]

log = logging.getLogger(__name__)

MAX_MESSAGE = 256 * 1024 * 1024
GRPC_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
]
"""Channel options both ends use: big snapshots fit, and dead peers are noticed within ~30 s."""

_HELLO_TIMEOUT = 30.0


class _End:
    """The data plane closed its side of the stream."""


class _Metrics:
    def __init__(self, registry: prometheus_client.CollectorRegistry) -> None:
        self.connected = prometheus_client.Gauge(
            "nantian_xds_connected_nodes", "Data planes with an open configuration stream", registry=registry
        )
        self.sent = prometheus_client.Counter(
            "nantian_xds_messages_sent", "Snapshots and deltas sent", ["kind"], registry=registry
        )
        self.bytes = prometheus_client.Counter(
            "nantian_xds_sent_bytes", "Bytes of snapshots and deltas sent", registry=registry
        )
        self.acks = prometheus_client.Counter("nantian_xds_acks", "Configurations acked", registry=registry)
        self.nacks = prometheus_client.Counter(
            "nantian_xds_nacks", "Configurations refused by a data plane", ["node"], registry=registry
        )


class XdsServer:
    """Serves ``store`` to data planes over gRPC.

    :param store: Where snapshots come from.
    :param address: ``host:port`` to listen on; port 0 picks one (read :attr:`address` after :meth:`start`).
    :param tls: Server certificate, and client CA for mTLS; plaintext when ``None``.
    :param registry: Where node state goes (a new one when ``None``); the admin API reads it.
    :param metrics_registry: Prometheus registry for the server's metrics (a private one when ``None``).
    :param retry_rejected: Seconds before a refused version (still the newest) is offered again, doubling on
        each refusal up to ten minutes; ``None``: never on the same stream.
    """

    def __init__(
        self,
        store: SnapshotStore,
        *,
        address: str = "127.0.0.1:0",
        tls: ServerTls | None = None,
        registry: NodeRegistry | None = None,
        metrics_registry: prometheus_client.CollectorRegistry | None = None,
        retry_rejected: float | None = 30.0,
    ) -> None:
        self.store = store
        self.tls = tls
        self.retry_rejected = retry_rejected
        self._listen = address
        self.registry = registry if registry is not None else NodeRegistry()
        self._metrics = _Metrics(metrics_registry or prometheus_client.CollectorRegistry(auto_describe=True))
        self._server: grpc.aio.Server | None = None
        self._janitor: asyncio.Task[None] | None = None
        self._encoded_snapshots: Lru[str, Any] = Lru(16)
        self._encoded_deltas: Lru[tuple[str, str], Any] = Lru(64)
        self._streams: set[asyncio.Task[Any]] = set()
        self.port: int | None = None

    @property
    def address(self) -> str:
        """``host:port`` data planes connect to (the bound port once started)."""
        host = self._listen.rsplit(":", 1)[0]
        if host in ("0.0.0.0", "[::]", ""):
            host = "127.0.0.1"
        return f"{host}:{self.port if self.port is not None else self._listen.rsplit(':', 1)[-1]}"

    async def start(self) -> None:
        """Bind the address and serve. Raises :class:`OSError` if it cannot listen."""
        address, tls = self._listen, self.tls
        server = grpc.aio.server(options=GRPC_OPTIONS)
        pb_grpc.add_ConfigurationDiscoveryServiceServicer_to_server(_Servicer(self), server)
        try:
            if tls is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, tls.credentials())
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address}: {exc}") from exc
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        await server.start()
        self._server, self.port = server, int(port)
        self._janitor = asyncio.create_task(self._prune_forever(), name="xds-janitor")
        log.info("xds.listening address=%s port=%s tls=%s", address, port, tls is not None)

    async def stop(self, grace: float | None = 1.0) -> None:
        """Stop accepting streams and end the open ones (after ``grace`` seconds)."""
        if self._janitor is not None:
            self._janitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._janitor
            self._janitor = None
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
            log.info("xds.stopped")

    async def _prune_forever(self) -> None:
        interval = max(1.0, min(30.0, self.registry.forget_after / 2))
        while True:
            await asyncio.sleep(interval)
            for node in self.registry.prune():
                log.info("xds.node_forgotten node=%s", node)

    # --- one stream -------------------------------------------------------------------------------
    async def stream(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Serve one StreamConfiguration call until the peer goes away."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        session = ServerSession(retry_after=self.retry_rejected)
        peer = context.peer() or ""
        reader = asyncio.create_task(self._read(requests, queue), name=f"xds-read {peer}")
        watcher: asyncio.Task[None] | None = None
        record: NodeRecord | None = None
        try:
            try:
                first = await asyncio.wait_for(queue.get(), _HELLO_TIMEOUT)
            except TimeoutError:
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no Hello within 30 seconds")
                return
            if not (isinstance(first, pb.DataPlaneMessage) and first.WhichOneof("message") == "hello"):
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the first message must be a Hello")
                return
            hello = first.hello
            if not hello.node_id:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Hello without a node id")
                return
            gateways = frozenset(hello.gateways)
            held = self.store.lookup(hello.version, gateways)
            record = self.registry.connect(
                hello.node_id, build=hello.build, gateways=tuple(sorted(gateways)), peer=peer, transport="grpc"
            )
            self._metrics.connected.inc()
            log.info(
                "xds.connected node=%s peer=%s holds=%s known=%s gateways=%s",
                hello.node_id,
                peer,
                hello.version or "-",
                held is not None,
                ",".join(sorted(gateways)) or "*",
            )
            if held is not None:
                record.version_acked = held.version
            generation = self.store.generation
            view = self.store.view(gateways)
            commands = session.handle(HelloReceived(hello.node_id, gateways, hello.version, held, hello.build))
            if view is not None:
                commands += session.handle(ConfigChanged(view))
            watcher = asyncio.create_task(self._watch(gateways, generation, queue), name=f"xds-watch {peer}")
            while True:
                if await self._execute(commands, session, record, context):
                    return
                item = await queue.get()
                if isinstance(item, _End):
                    return
                event = self._event(item, session, record)
                commands = session.handle(event) if event is not None else []
        except grpc.aio.AbortError:
            raise
        except Exception:  # this stream's failure (a write to a vanished peer, or a bug): end only this stream
            log.exception("xds.stream_failed node=%s", record.node_id if record is not None else "-")
        finally:
            reader.cancel()
            if watcher is not None:
                watcher.cancel()
            if record is not None:
                self.registry.disconnect(record)
                self._metrics.connected.dec()
                log.info("xds.disconnected node=%s acked=%s", record.node_id, record.version_acked or "-")

    async def _read(self, requests: AsyncIterator[Any], queue: asyncio.Queue[Any]) -> None:
        try:
            async for message in requests:
                queue.put_nowait(message)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            log.debug("xds.read_failed error=%r", exc)
        finally:
            queue.put_nowait(_End())

    async def _watch(self, gateways: frozenset[str], generation: int, queue: asyncio.Queue[Any]) -> None:
        tick = None if self.retry_rejected is None else max(0.05, min(5.0, self.retry_rejected / 2))
        while True:
            try:
                generation = await asyncio.wait_for(self.store.wait(generation), tick)
            except TimeoutError:
                queue.put_nowait(Tick(time.monotonic()))
                continue
            view = self.store.view(gateways)
            if view is not None:
                queue.put_nowait(ConfigChanged(view))

    def _event(self, item: Any, session: ServerSession, record: NodeRecord) -> Event | None:
        if isinstance(item, ConfigChanged | Tick):
            return item
        kind = item.WhichOneof("message")
        if kind == "ack":
            return AckReceived(item.ack.version, item.ack.nonce)
        if kind == "nack":
            n = item.nack
            return NackReceived(n.version, n.nonce, n.error_detail, n.resync, time.monotonic())
        if kind == "status":
            status = decode_status(item.status)
            self.registry.reported(record, status)
            log.debug("xds.status node=%s version=%s health=%s", record.node_id, status.version, status.health.value)
            return None
        if kind == "hello":
            return HelloReceived(item.hello.node_id, frozenset(item.hello.gateways), item.hello.version, None)
        log.debug("xds.empty_message node=%s", record.node_id)
        return None

    async def _execute(self, commands: list[Command], session: ServerSession, record: NodeRecord, context: Any) -> bool:
        """Carry ``commands`` out; ``True`` when the stream must end."""
        for command in commands:
            match command:
                case SendSnapshot(snapshot, nonce):
                    message = pb.ControlPlaneMessage()
                    message.snapshot.CopyFrom(self._encoded_snapshot(snapshot))
                    message.snapshot.nonce = nonce
                    await self._send(context, message, record, "snapshot", snapshot.version)
                case SendDelta(base, snapshot, nonce):
                    message = pb.ControlPlaneMessage()
                    delta = self._encoded_delta(base, snapshot)
                    if delta is None:  # the delta would be larger than the snapshot: send that instead
                        message.snapshot.CopyFrom(self._encoded_snapshot(snapshot))
                        message.snapshot.nonce = nonce
                        await self._send(context, message, record, "snapshot", snapshot.version)
                    else:
                        message.delta.CopyFrom(delta)
                        message.delta.nonce = nonce
                        await self._send(context, message, record, "delta", snapshot.version)
                case Accepted(version):
                    self.registry.acked(record, version)
                    self._metrics.acks.inc()
                    log.debug("xds.acked node=%s version=%s", record.node_id, version)
                case Rejected(version, detail, serving):
                    self.registry.nacked(record, version, detail)
                    self._metrics.nacks.labels(record.node_id).inc()
                    log.warning(
                        "xds.nacked node=%s version=%s serving=%s detail=%s", record.node_id, version, serving, detail
                    )
                case Stale(nonce):
                    log.debug("xds.stale_reply node=%s nonce=%s", record.node_id, nonce)
                case Close(reason):
                    log.warning("xds.protocol_error node=%s reason=%s", record.node_id, reason)
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, reason)
                    return True
        return False

    async def _send(self, context: Any, message: Any, record: NodeRecord, kind: str, version: str) -> None:
        size = message.ByteSize()
        await context.write(message)
        self.registry.sent(record, version, size)
        self._metrics.sent.labels(kind).inc()
        self._metrics.bytes.inc(size)
        log.debug("xds.sent node=%s kind=%s version=%s bytes=%s", record.node_id, kind, version, size)

    def _encoded_snapshot(self, snapshot: Snapshot) -> Any:
        found = self._encoded_snapshots.get(snapshot.version)
        if found is None:
            found = encode_snapshot(snapshot)
            self._encoded_snapshots.put(snapshot.version, found)
        return found

    def _encoded_delta(self, base: Snapshot, snapshot: Snapshot) -> Any:
        """The delta message from ``base`` to ``snapshot``, or ``None`` when the full snapshot is smaller."""
        key = (base.version, snapshot.version)
        found = self._encoded_deltas.get(key)
        if found is None:
            delta = encode_delta(self.store.delta(base, snapshot), base=base)
            found = (delta if delta.ByteSize() < self._encoded_snapshot(snapshot).ByteSize() else None,)
            self._encoded_deltas.put(key, found)
        return found[0]


class _Servicer(pb_grpc.ConfigurationDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, server: XdsServer) -> None:
        self._server = server

    async def StreamConfiguration(self, request_iterator: AsyncIterator[Any], context: Any) -> None:
        try:
            await self._server.stream(request_iterator, context)
        except asyncio.CancelledError:
            # The server is stopping (or the peer vanished): the stream is over. Returning, rather than
            # re-raising, keeps grpc from printing a traceback per open stream at shutdown.
            log.debug("xds.stream_cancelled peer=%s", context.peer())
