"""``nantian proxy``: a data plane streaming its configuration from ``nantian controller``.

A transport client (gateway.control.v1 over gRPC by default) feeds a :class:`~nantian.proxy.ProxyRuntime`.
Snapshots that cannot be applied in full (a listener that cannot bind included) are refused with a Nack and
the last good configuration keeps serving; so does the proxy when the controller is gone.

With ``--workers N`` (N > 1) this process only supervises: it runs N ``nantian proxy`` worker processes with node
ids ``ID-0`` .. ``ID-(N-1)``, each streaming from the controller on its own and binding the listener ports with
``SO_REUSEPORT`` (ports granted through :mod:`nantian.proxy.workers`), and serves an admin API that is ready once
every worker applied a configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pluggy
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from nantian.admin import AdminServer
from nantian.eventloop import run_app, stop_on_signals
from nantian.ir import Snapshot
from nantian.plugins import get_plugin_manager
from nantian.proxy import ProxyRuntime, RuntimeOptions
from nantian.proxy.access_log import access_log_argument
from nantian.proxy.stream_options import StreamOptions, add_stream_arguments, stream_arguments, stream_options_from
from nantian.proxy.workers import (
    WorkerChannel,
    WorkerChannelServer,
    WorkerSupervisor,
    nantian_command,
    worker_status,
)
from nantian.xds import ClientOptions, ClientTls, TransportClient, status_of

__all__ = [
    "DataPlane",
    "ProxyOptions",
    "build_parser",
    "main",
    "options_from",
    "run_proxy",
    "run_proxy_workers",
    "worker_arguments",
]

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class ProxyOptions:
    """Everything ``nantian proxy`` takes (CLI flag names in the comments)."""

    xds_address: str = "127.0.0.1:18080"  # --xds HOST:PORT of the controller
    node_id: str = attrs.field(factory=socket.gethostname)  # --node-id
    gateways: tuple[str, ...] = ()  # --gateway NS/NAME, repeatable; none: every Gateway of the class
    port_offset: int = 0  # --port-offset N: a listener on port P binds P+N
    admin_host: str = "127.0.0.1"  # --admin-address HOST:PORT
    admin_port: int = 19001
    xds_tls_ca: Path | None = None  # --xds-tls-ca: verify the controller with this CA (enables TLS)
    xds_tls_cert: Path | None = None  # --xds-tls-cert: client certificate for mTLS ...
    xds_tls_key: Path | None = None  # --xds-tls-key: ... and its key
    xds_server_name: str | None = None  # --xds-server-name: name expected in the controller's certificate
    drain_timeout: float = 10.0  # --drain-timeout seconds
    transport: str = "grpc"  # --transport: a nantian_transport plugin name
    workers: int = attrs.field(default=1, validator=attrs.validators.ge(1))  # --workers N
    stream: StreamOptions = attrs.field(factory=StreamOptions)
    """--stream-idle-timeout, --tls-hello-timeout, --udp-session-timeout, --udp-max-sessions: TCP/UDP/TLS
    listeners."""
    access_log: str | None = None
    """--access-log PATH: HTTP access lines batched into this file (``-``: standard output); ``None``: the
    ``nantian.access`` logger."""
    worker_channel: str | None = None
    """--worker-channel PATH (set by a ``--workers`` parent): bind with SO_REUSEPORT through the parent's channel,
    report status to it, drain when it goes away."""

    def client_tls(self) -> ClientTls | None:
        if self.xds_tls_ca is None and self.xds_tls_cert is None and self.xds_tls_key is None:
            return None
        return ClientTls(
            ca=self.xds_tls_ca, cert=self.xds_tls_cert, key=self.xds_tls_key, server_name=self.xds_server_name
        )


class DataPlane:
    """The running data plane. :meth:`start`, then :meth:`stop`; or use :func:`run_proxy`."""

    def __init__(self, options: ProxyOptions, *, plugin_manager: pluggy.PluginManager | None = None) -> None:
        self.options = options
        self._pm = plugin_manager or get_plugin_manager()
        self.channel = WorkerChannel(options.worker_channel) if options.worker_channel else None
        self.runtime = ProxyRuntime(
            RuntimeOptions(
                port_offset=options.port_offset,
                node_id=options.node_id,
                bind_failure="reject",
                drain_timeout=options.drain_timeout,
                reuse_port=self.channel is not None,
                port_guard=self.channel,
                stream=options.stream,
                access_log_path=options.access_log,
            ),
            plugin_manager=self._pm,
        )
        self.client: TransportClient | None = None
        self.admin: AdminServer | None = None
        self.metrics_registry = CollectorRegistry(auto_describe=True)
        self.metrics_registry.register(_ClientCollector(self))
        self._task: asyncio.Task[None] | None = None
        self._report_task: asyncio.Task[None] | None = None

    @property
    def admin_port(self) -> int:
        if self.admin is None:
            raise RuntimeError("the data plane is not started")
        return self.admin.port

    async def start(self) -> None:
        """Serve the admin API and start streaming configuration."""
        options = self.options
        transport = self._pm.hook.nantian_transport(name=options.transport)
        if transport is None:
            raise ValueError(f"no transport called {options.transport!r}")
        if self.channel is not None:
            await self.channel.connect()
        self.client = transport.client(
            self.runtime,
            ClientOptions(
                node_id=options.node_id,
                address=options.xds_address,
                gateways=options.gateways,
                tls=options.client_tls(),
            ),
        )
        self.admin = AdminServer(_DataPlaneState(self), options.admin_host, options.admin_port)
        await self.admin.start()
        self._task = asyncio.create_task(self.client.run(), name="config-client")
        if self.channel is not None:
            self._report_task = asyncio.create_task(self._report(self.channel), name="worker-report")
        log.info(
            "proxy.started node=%s xds=%s gateways=%s offset=%s admin=%s",
            options.node_id,
            options.xds_address,
            ",".join(options.gateways) or "*",
            options.port_offset,
            self.admin.port,
        )

    async def _report(self, channel: WorkerChannel) -> None:
        """Send this worker's status to the supervising parent whenever it changes (checked 5 times a second)."""
        last: dict[str, Any] | None = None
        while not channel.closed.is_set():
            client = self.client
            status = worker_status(
                self.options.node_id,
                self.admin.port if self.admin is not None else None,
                self.runtime.version,
                connected=bool(getattr(client, "connected", False)),
                lastNack=None if client is None else client.last_error,
                counters=dict(self.runtime.counters()),
            )
            if status != last:
                channel.report(status)
                last = status
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(channel.closed.wait(), 0.2)

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Stop streaming, finish in-flight requests (within ``drain_timeout``), close everything."""
        if self._report_task is not None:
            self._report_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._report_task
            self._report_task = None
        if self.client is not None:
            await self.client.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self.runtime.drain(self.options.drain_timeout if drain_timeout is None else drain_timeout)
        if self.channel is not None:
            await self.channel.close()
        if self.admin is not None:
            await self.admin.close()
        log.info("proxy.stopped node=%s", self.options.node_id)


class _DataPlaneState:
    """The admin view of a data plane: itself as the one node."""

    def __init__(self, plane: DataPlane) -> None:
        self._p = plane

    def ready(self) -> bool:
        return self._p.runtime.version is not None

    def resources(self) -> Sequence[Mapping[str, Any]] | None:
        return None

    def snapshot(self) -> Snapshot | None:
        return self._p.runtime.snapshot

    def nodes(self) -> Sequence[Mapping[str, Any]]:
        client = self._p.client
        status = status_of(self._p.runtime, self._p.runtime.version)
        return [
            {
                "nodeId": self._p.options.node_id,
                "transport": self._p.options.transport,
                "controlPlane": self._p.options.xds_address,
                "gateways": list(self._p.options.gateways),
                "connected": bool(getattr(client, "connected", False)),
                "versionAcked": None if client is None else client.version,
                "lastNack": None if client is None else client.last_error,
                "lastStatus": status.to_json(),
            }
        ]

    def metrics_text(self) -> bytes:
        registry = self._p.runtime.metrics_registry
        proxy = bytes(generate_latest(registry)) if isinstance(registry, CollectorRegistry) else b""
        return proxy + bytes(generate_latest(self._p.metrics_registry))


class _ClientCollector:
    """The configuration client's state as Prometheus metrics, read at scrape time."""

    def __init__(self, plane: DataPlane) -> None:
        self._p = plane

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        client = self._p.client
        if client is None:
            return
        yield GaugeMetricFamily(
            "nantian_xds_client_connected",
            "1 while the configuration stream to the control plane is open",
            value=1.0 if getattr(client, "connected", False) else 0.0,
        )
        for name, attribute, helptext in (
            ("nantian_xds_client_applied", "applied", "Configurations applied and acked"),
            (
                "nantian_xds_client_rejected",
                "rejected",
                "Configurations refused (Nack), last good kept",
            ),
            ("nantian_xds_client_connects", "connects", "Streams opened to the control plane"),
        ):
            value = getattr(client, attribute, None)
            if isinstance(value, int):
                yield CounterMetricFamily(name, helptext, value=value)


async def run_proxy(options: ProxyOptions, *, stop: asyncio.Event | None = None) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT), then drain. Returns the process exit code.

    With ``options.workers > 1``: :func:`run_proxy_workers`. A worker (``options.worker_channel``) also stops when
    its parent goes away.
    """
    if options.workers > 1 and options.worker_channel is None:
        return await run_proxy_workers(options, stop=stop)
    stop = stop or asyncio.Event()
    plane = DataPlane(options)
    try:
        await plane.start()
    except (OSError, ValueError) as exc:
        log.error("proxy.start_failed error=%s", exc)
        await plane.stop(0)
        return 2
    remove_signal_handlers = stop_on_signals(stop)
    waits = [asyncio.create_task(stop.wait())]
    if plane.channel is not None:
        waits.append(asyncio.create_task(plane.channel.closed.wait()))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            log.warning("proxy.supervisor_gone node=%s", options.node_id)
    finally:
        for task in waits:
            task.cancel()
        remove_signal_handlers()
        log.info("proxy.draining timeout=%s", options.drain_timeout)
        await plane.stop()
    return 0


def worker_arguments(options: ProxyOptions, index: int, channel: str) -> list[str]:
    """The ``nantian proxy`` arguments of worker ``index`` of a ``--workers`` parent with ``options``."""
    args = [
        "--xds", options.xds_address,
        "--node-id", f"{options.node_id}-{index}",
        "--port-offset", str(options.port_offset),
        "--admin-address", f"{options.admin_host}:0",
        "--drain-timeout", str(options.drain_timeout),
        "--transport", options.transport,
        "--worker-channel", channel,
        *stream_arguments(options.stream),
    ]  # fmt: skip
    if options.access_log is not None:
        args += ["--access-log", options.access_log]
    for gateway in options.gateways:
        args += ["--gateway", gateway]
    for flag, value in (
        ("--xds-tls-ca", options.xds_tls_ca),
        ("--xds-tls-cert", options.xds_tls_cert),
        ("--xds-tls-key", options.xds_tls_key),
        ("--xds-server-name", options.xds_server_name),
    ):
        if value is not None:
            args += [flag, str(value)]
    return args


class _WorkersState:
    """The admin view of a ``--workers`` parent: ready when every worker applied a configuration."""

    def __init__(self, count: int, channel: WorkerChannelServer, supervisor: WorkerSupervisor) -> None:
        self._count = count
        self._channel = channel
        self._supervisor = supervisor
        self._ready = False

    def ready(self) -> bool:
        if not self._ready:
            reports = self._channel.reports()
            self._ready = len(reports) >= self._count and all(r.get("versionApplied") for r in reports)
        return self._ready

    def resources(self) -> Sequence[Mapping[str, Any]] | None:
        return None

    def snapshot(self) -> Snapshot | None:
        return None

    def nodes(self) -> Sequence[Mapping[str, Any]]:
        return self._channel.reports()

    def metrics_text(self) -> bytes:
        registries = (self._supervisor.metrics_registry, self._channel.metrics_registry)
        return b"".join(bytes(generate_latest(r)) for r in registries)


async def run_proxy_workers(options: ProxyOptions, *, stop: asyncio.Event | None = None) -> int:
    """Supervise ``options.workers`` worker processes until ``stop`` (or SIGTERM/SIGINT), then drain them all."""
    stop = stop or asyncio.Event()
    channel = WorkerChannelServer(admin_host=options.admin_host)
    await channel.start()
    supervisor = WorkerSupervisor(
        options.workers,
        lambda i: nantian_command("proxy", *worker_arguments(options, i, channel.path)),
    )
    admin = AdminServer(_WorkersState(options.workers, channel, supervisor), options.admin_host, options.admin_port)
    try:
        await admin.start()
    except OSError as exc:
        log.error("proxy.start_failed error=%s", exc)
        await channel.close()
        return 2
    await supervisor.start()
    remove_signal_handlers = stop_on_signals(stop)
    log.info("proxy.workers_started workers=%s node=%s admin=%s", options.workers, options.node_id, admin.port)
    try:
        await stop.wait()
    finally:
        remove_signal_handlers()
        log.info("proxy.draining workers=%s timeout=%s", options.workers, options.drain_timeout)
        await supervisor.stop(options.drain_timeout + 5.0)
        await admin.close()
        await channel.close()
    return 0


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT") from None
    if not sep or not host or not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), number


def _gateway(text: str) -> str:
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAMESPACE/NAME")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The ``nantian proxy`` arguments."""
    p = argparse.ArgumentParser(prog="nantian proxy", description="a data plane streaming config from a controller")
    p.add_argument("--xds", type=_host_port, default=("127.0.0.1", 18080), help="the controller's HOST:PORT")
    p.add_argument("--node-id", default=socket.gethostname(), help="this data plane's unique name")
    p.add_argument("--gateway", type=_gateway, action="append", default=[], help="serve only NS/NAME (repeatable)")
    p.add_argument("--port-offset", type=int, default=0, help="a listener on port P binds P+N")
    p.add_argument("--admin-address", type=_host_port, default=("127.0.0.1", 19001))
    p.add_argument("--xds-tls-ca", type=Path, help="verify the controller's certificate with this CA (enables TLS)")
    p.add_argument("--xds-tls-cert", type=Path, help="client certificate for mTLS to the controller")
    p.add_argument("--xds-tls-key", type=Path, help="private key of --xds-tls-cert")
    p.add_argument("--xds-server-name", help="name to expect in the controller's certificate")
    p.add_argument("--drain-timeout", type=float, default=10.0, help="seconds to finish requests on SIGTERM")
    p.add_argument("--transport", default="grpc", help="transport plugin name")
    p.add_argument(
        "--workers", type=int, default=1, help="data-plane processes sharing the listener ports (SO_REUSEPORT)"
    )
    p.add_argument("--worker-channel", help=argparse.SUPPRESS)  # set by a --workers parent for its workers
    p.add_argument(
        "--access-log",
        metavar="PATH",
        type=access_log_argument,
        help="HTTP access log file, written in batches (- for stdout); default: the nantian.access logger",
    )
    add_stream_arguments(p)
    return p


def options_from(args: argparse.Namespace) -> ProxyOptions:
    """:class:`ProxyOptions` from parsed :func:`build_parser` arguments."""
    return ProxyOptions(
        xds_address=f"{args.xds[0]}:{args.xds[1]}",
        node_id=args.node_id,
        gateways=tuple(args.gateway),
        port_offset=args.port_offset,
        admin_host=args.admin_address[0],
        admin_port=args.admin_address[1],
        xds_tls_ca=args.xds_tls_ca,
        xds_tls_cert=args.xds_tls_cert,
        xds_tls_key=args.xds_tls_key,
        xds_server_name=args.xds_server_name,
        drain_timeout=args.drain_timeout,
        transport=args.transport,
        workers=args.workers,
        stream=stream_options_from(args),
        access_log=args.access_log,
        worker_channel=args.worker_channel,
    )


def main(argv: Sequence[str]) -> int:
    """``nantian proxy ARGS``: parse, run on uvloop when available, return the exit code."""
    args = build_parser().parse_args(list(argv))
    try:
        options = options_from(args)
        options.client_tls()
    except ValueError as exc:
        print(f"nantian proxy: error: {exc}", file=sys.stderr)
        return 2
    return run_app(run_proxy(options))
