"""``nantian controller``: the control plane of a split deployment.

Resource source -> :class:`~nantian.controlplane.reconciler.Reconciler` -> :class:`~nantian.xds.SnapshotStore`
-> transport server (gateway.control.v1 over gRPC by default) -> data planes (``nantian proxy``). The admin
API shows the resources with their statuses, the snapshot, and every data plane in ``/api/v1/nodes``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pluggy
from prometheus_client import CollectorRegistry, generate_latest

from nantian.admin import AdminServer
from nantian.controlplane.metrics import ControlPlaneMetrics
from nantian.controlplane.nodes import node_documents
from nantian.controlplane.reconciler import Reconciled, Reconciler
from nantian.errors import SourceError
from nantian.eventloop import run_app, stop_on_signals
from nantian.ir import Snapshot
from nantian.plugins import get_plugin_manager
from nantian.translate import TranslateOptions
from nantian.xds import NodeRegistry, ServerOptions, ServerTls, SnapshotStore, TransportServer

__all__ = ["Controller", "ControllerOptions", "build_parser", "main", "run_controller"]

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class ControllerOptions:
    """Everything ``nantian controller`` takes (CLI flag names in the comments)."""

    config_dir: Path | None = None  # --config-dir
    source: str | None = None  # --source URL; default files:<config_dir>
    address_pool: str = "127.0.0.0/8"  # --address-pool
    controller_name: str = "nantian.io/gateway-controller"  # --controller-name
    xds_address: str = "0.0.0.0:18080"  # --xds-address HOST:PORT (port 0 picks one)
    xds_tls_cert: Path | None = None  # --xds-tls-cert: serve TLS with this certificate ...
    xds_tls_key: Path | None = None  # --xds-tls-key: ... and key
    xds_tls_ca: Path | None = None  # --xds-tls-ca: require data-plane certificates signed by this CA (mTLS)
    admin_host: str = "127.0.0.1"  # --admin-address HOST:PORT
    admin_port: int = 19000
    transport: str = "grpc"  # --transport: a nantian_transport plugin name
    forget_after: float = 300.0  # --forget-nodes-after seconds: how long a gone data plane stays listed
    retry_rejected: float = 30.0  # --retry-rejected seconds: offer a refused config again (doubling); 0: never

    @property
    def source_url(self) -> str:
        if self.source:
            return self.source
        if self.config_dir is None:
            raise ValueError("the controller needs --config-dir or --source")
        return f"files:{self.config_dir}"

    def server_tls(self) -> ServerTls | None:
        if self.xds_tls_cert is None and self.xds_tls_key is None:
            if self.xds_tls_ca is not None:
                raise ValueError("--xds-tls-ca needs --xds-tls-cert and --xds-tls-key")
            return None
        if self.xds_tls_cert is None or self.xds_tls_key is None:
            raise ValueError("--xds-tls-cert and --xds-tls-key go together")
        return ServerTls(cert=self.xds_tls_cert, key=self.xds_tls_key, client_ca=self.xds_tls_ca)


class Controller:
    """The running control plane. :meth:`start`, then :meth:`stop`; or use :func:`run_controller`."""

    def __init__(self, options: ControllerOptions, *, plugin_manager: pluggy.PluginManager | None = None) -> None:
        self.options = options
        self._pm = plugin_manager or get_plugin_manager()
        self.store = SnapshotStore()
        self.registry = NodeRegistry(forget_after=options.forget_after)
        self.metrics = ControlPlaneMetrics(CollectorRegistry(auto_describe=True))
        self.reconciler: Reconciler | None = None
        self.server: TransportServer | None = None
        self.admin: AdminServer | None = None
        self.refused: str | None = None
        """Why the last translated snapshot was not published (inconsistent), if it was not."""
        self._source: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def xds_address(self) -> str:
        """Where data planes connect (``host:port`` with the bound port)."""
        if self.server is None:
            raise RuntimeError("the controller is not started")
        return self.server.address

    @property
    def admin_port(self) -> int:
        if self.admin is None:
            raise RuntimeError("the controller is not started")
        return self.admin.port

    @property
    def reconcile_task(self) -> asyncio.Task[None] | None:
        return self._task

    async def start(self) -> None:
        """Open the source, serve data planes and the admin API, start reconciling."""
        options = self.options
        url = options.source_url
        source = self._pm.hook.nantian_resource_source(url=url)
        if source is None:
            raise ValueError(f"no resource source for {url!r}")
        transport = self._pm.hook.nantian_transport(name=options.transport)
        if transport is None:
            raise ValueError(f"no transport called {options.transport!r}")
        self._source = source
        translate_options = TranslateOptions(controller_name=options.controller_name, address_pool=options.address_pool)
        sinks = [s for group in self._pm.hook.nantian_status_sinks(url=url) for s in (group or ())]
        self.reconciler = Reconciler(source, translate_options, self._publish, sinks=sinks)
        self.server = transport.server(
            self.store,
            ServerOptions(
                address=options.xds_address,
                tls=options.server_tls(),
                registry=self.registry,
                metrics_registry=self.metrics.registry,
                retry_rejected=options.retry_rejected or None,
            ),
        )
        await self.server.start()
        self.admin = AdminServer(_ControllerState(self), options.admin_host, options.admin_port)
        await self.admin.start()
        self._task = asyncio.create_task(self.reconciler.run(), name="reconciler")
        log.info("controller.started source=%s xds=%s admin=%s", url, self.server.address, self.admin.port)

    async def _publish(self, result: Reconciled) -> None:
        self.metrics.observe(result)
        snapshot = result.snapshot
        problems = snapshot.problems()
        if problems:  # a translator bug: data planes keep the last good snapshot
            self.refused = "; ".join(problems)
            log.error("snapshot.inconsistent version=%s problems=%s", snapshot.version, self.refused)
            return
        self.refused = None
        self.store.publish(snapshot)

    async def stop(self) -> None:
        """Stop reconciling, close streams (data planes keep serving what they have) and the admin API."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._source is not None:
            with contextlib.suppress(Exception):
                await self._source.aclose()
            self._source = None
        if self.server is not None:
            await self.server.stop()
        if self.admin is not None:
            await self.admin.close()
        log.info("controller.stopped")


class _ControllerState:
    """The admin view of a controller."""

    def __init__(self, controller: Controller) -> None:
        self._c = controller

    def ready(self) -> bool:
        return self._c.store.current is not None

    def resources(self) -> Sequence[Mapping[str, Any]] | None:
        latest = self._c.reconciler.latest if self._c.reconciler is not None else None
        return [] if latest is None else latest.objects()

    def snapshot(self) -> Snapshot | None:
        return self._c.store.current

    def nodes(self) -> Sequence[Mapping[str, Any]]:
        return node_documents(self._c.registry)

    def metrics_text(self) -> bytes:
        return bytes(generate_latest(self._c.metrics.registry))


async def run_controller(options: ControllerOptions, *, stop: asyncio.Event | None = None) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT). Returns the process exit code."""
    stop = stop or asyncio.Event()
    controller = Controller(options)
    try:
        await controller.start()
    except (OSError, ValueError, SourceError) as exc:
        log.error("controller.start_failed error=%s", exc)
        await controller.stop()
        return 2
    remove_signal_handlers = stop_on_signals(stop)
    try:
        await stop.wait()
    finally:
        remove_signal_handlers()
        await controller.stop()
    return 0


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT") from None
    if not sep or not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", number


def build_parser() -> argparse.ArgumentParser:
    """The ``nantian controller`` arguments."""
    p = argparse.ArgumentParser(prog="nantian controller", description="the control plane of a split deployment")
    p.add_argument("--config-dir", type=Path, help="directory of manifests to watch (the file source)")
    p.add_argument("--source", help="resource source URL: files:DIR, kubernetes, or a plugin's scheme")
    p.add_argument("--address-pool", default="127.0.0.0/8", help="CIDR Gateway addresses come from")
    p.add_argument("--controller-name", default="nantian.io/gateway-controller")
    p.add_argument("--xds-address", type=_host_port, default=("0.0.0.0", 18080), help="gRPC config server")
    p.add_argument("--xds-tls-cert", type=Path, help="serve the config stream over TLS with this certificate")
    p.add_argument("--xds-tls-key", type=Path, help="private key of --xds-tls-cert")
    p.add_argument("--xds-tls-ca", type=Path, help="require data-plane client certificates from this CA (mTLS)")
    p.add_argument("--admin-address", type=_host_port, default=("127.0.0.1", 19000))
    p.add_argument("--transport", default="grpc", help="transport plugin name")
    p.add_argument("--forget-nodes-after", type=float, default=300.0, help="seconds a gone data plane stays listed")
    p.add_argument(
        "--retry-rejected", type=float, default=30.0, help="seconds before a refused config is offered again (0: never)"
    )
    return p


def options_from(args: argparse.Namespace) -> ControllerOptions:
    """:class:`ControllerOptions` from parsed :func:`build_parser` arguments."""
    return ControllerOptions(
        config_dir=args.config_dir,
        source=args.source,
        address_pool=args.address_pool,
        controller_name=args.controller_name,
        xds_address=f"{args.xds_address[0]}:{args.xds_address[1]}",
        xds_tls_cert=args.xds_tls_cert,
        xds_tls_key=args.xds_tls_key,
        xds_tls_ca=args.xds_tls_ca,
        admin_host=args.admin_address[0],
        admin_port=args.admin_address[1],
        transport=args.transport,
        forget_after=args.forget_nodes_after,
        retry_rejected=args.retry_rejected,
    )


def main(argv: Sequence[str]) -> int:
    """``nantian controller ARGS``: parse, run on uvloop when available, return the exit code."""
    args = build_parser().parse_args(list(argv))
    if args.config_dir is None and args.source is None:
        print("nantian controller: error: give --config-dir DIR or --source URL", file=sys.stderr)
        return 2
    try:
        options = options_from(args)
        options.server_tls()
    except ValueError as exc:
        print(f"nantian controller: error: {exc}", file=sys.stderr)
        return 2
    return run_app(run_controller(options))
