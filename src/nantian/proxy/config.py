"""Compiling an IR :class:`~nantian.ir.Snapshot` into what the data plane serves.

Everything that can fail fails here, before anything is swapped in: inconsistent snapshots, bad regular
expressions, TLS material OpenSSL refuses. The result is immutable; the runtime swaps it in atomically.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence

import pluggy

from nantian.errors import ConfigRejected
from nantian.ir import Cluster, HttpRoute, Listener, Protocol, Snapshot, TlsMode
from nantian.proxy.access_log import AccessLogFile
from nantian.proxy.clusters import ClusterPlan, PoolRegistry
from nantian.proxy.filters import HttpFilter
from nantian.proxy.handler import CompiledListener, Section
from nantian.proxy.metrics import ProxyMetrics
from nantian.proxy.route_plan import BackendPlan, RoutePlan
from nantian.proxy.router import HostMap, RouteTable
from nantian.proxy.tls import ServerTls, build_server_tls

__all__ = ["HTTP_PROTOCOLS", "CompiledConfig", "compile_snapshot"]

log = logging.getLogger(__name__)

HTTP_PROTOCOLS = frozenset({Protocol.HTTP, Protocol.HTTPS})


class CompiledConfig:
    """A compiled snapshot: one :class:`CompiledListener` per HTTP(S) IR listener, TLS per HTTPS listener."""

    def __init__(
        self,
        snapshot: Snapshot,
        listeners: Mapping[str, CompiledListener],
        server_tls: Mapping[str, ServerTls],
        pool_keys: set[tuple[str, str, str, int, str]],
    ) -> None:
        self.snapshot = snapshot
        self.version = snapshot.version
        self.listeners = dict(listeners)
        self.server_tls = dict(server_tls)
        self.pool_keys = pool_keys


PluginManagerSource = Callable[[], pluggy.PluginManager | None]


def _plugin_filters(route: HttpRoute, source: PluginManagerSource) -> tuple[list[HttpFilter], str | None]:
    """Filters for the route's ExtensionRefs, or an error that makes the route answer 500."""
    filters: list[HttpFilter] = []
    pm = source()
    for pf in route.plugin_filters:
        if pm is None:
            return [], f"filter {pf.name} unavailable"
        try:
            results = pm.hook.nantian_http_filters(route=route, filter=pf)
        except Exception:
            log.error("proxy.plugin_filter_failed route=%s filter=%s", route.name, pf.name, exc_info=True)
            return [], f"filter {pf.name} failed"
        found = [f for result in results if result for f in result]
        if not found:
            log.warning("proxy.plugin_filter_missing route=%s filter=%s", route.name, pf.name)
            return [], f"filter {pf.name} unavailable"
        filters.extend(found)
    return filters, None


def _route_plan(
    route: HttpRoute,
    clusters: Mapping[str, ClusterPlan],
    *,
    metrics: ProxyMetrics,
    listener_port: int,
    pm: PluginManagerSource,
) -> RoutePlan:
    backends = [
        BackendPlan(
            cluster=clusters.get(b.cluster) if b.cluster is not None else None,
            name=b.cluster or "-",
            request_headers=b.request_headers,
            response_headers=b.response_headers,
        )
        for b in route.backends
    ]
    mirrors = [(clusters[m.cluster], m.percent) for m in route.mirrors]
    filters, error = _plugin_filters(route, pm) if route.plugin_filters else ([], None)
    return RoutePlan(
        route,
        backends=backends,
        mirrors=mirrors,
        filters=filters,
        metrics=metrics,
        listener_port=listener_port,
        filter_error=error,
    )


def _compile_listener(
    lst: Listener,
    clusters: Mapping[str, ClusterPlan],
    *,
    metrics: ProxyMetrics,
    pm: PluginManagerSource,
    access_log: bool,
    access_log_file: AccessLogFile | None = None,
) -> CompiledListener:
    by_section: dict[str, tuple[str | None, list[tuple[str, RouteTable[RoutePlan]]]]] = {}
    for vh in lst.virtual_hosts:
        entries = [
            (r.match, _route_plan(r, clusters, metrics=metrics, listener_port=lst.port, pm=pm)) for r in vh.routes
        ]
        try:
            table = RouteTable(entries)
        except re.error as exc:
            raise ConfigRejected(
                f"listener {lst.name}: virtual host {vh.hostname}: bad regular expression: {exc}"
            ) from exc
        by_section.setdefault(vh.section, (vh.section_hostname, []))[1].append((vh.hostname, table))
    sections = HostMap(
        (hostname, Section(name, hostname, HostMap(vhosts))) for name, (hostname, vhosts) in by_section.items()
    )
    return CompiledListener(
        lst.name,
        sections,
        metrics=metrics,
        detect_misdirected=lst.detect_misdirected,
        access_log_enabled=access_log,
        access_log_file=access_log_file,
    )


def _clusters(
    clusters: Sequence[Cluster], snapshot: Snapshot, pools: PoolRegistry, used: set[tuple[str, str, str, int, str]]
) -> dict[str, ClusterPlan]:
    secrets = {s.name: s for s in snapshot.secrets}
    return {c.name: pools.plan(c, secrets, used) for c in clusters}


def compile_snapshot(
    snapshot: Snapshot,
    pools: PoolRegistry,
    *,
    metrics: ProxyMetrics,
    plugin_manager: PluginManagerSource,
    access_log: bool = True,
    access_log_file: AccessLogFile | None = None,
) -> CompiledConfig:
    """Compile ``snapshot``. Pools are taken from (or added to) ``pools``; nothing is closed here.

    :raises ConfigRejected: the snapshot is inconsistent or something in it cannot be compiled.
    """
    problems = snapshot.problems()
    if problems:
        raise ConfigRejected(f"snapshot {snapshot.version}: " + "; ".join(problems))
    binds: dict[tuple[str, int], str] = {}
    for lst in snapshot.listeners:
        other = binds.setdefault((lst.address, lst.port), lst.name)
        if other != lst.name:
            raise ConfigRejected(f"listeners {other} and {lst.name} both bind {lst.address}:{lst.port}")
    used: set[tuple[str, str, str, int, str]] = set()
    try:
        clusters = _clusters(snapshot.clusters, snapshot, pools, used)
        secrets = {s.name: s for s in snapshot.secrets}
        listeners: dict[str, CompiledListener] = {}
        server_tls: dict[str, ServerTls] = {}
        for lst in snapshot.listeners:
            if lst.protocol not in HTTP_PROTOCOLS:
                continue
            listeners[lst.name] = _compile_listener(
                lst,
                clusters,
                metrics=metrics,
                pm=plugin_manager,
                access_log=access_log,
                access_log_file=access_log_file,
            )
            if lst.protocol is Protocol.HTTPS or lst.tls_mode is TlsMode.TERMINATE:
                server_tls[lst.name] = build_server_tls(lst, secrets)
    except ConfigRejected:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigRejected(f"snapshot {snapshot.version}: cannot compile: {exc!r}") from exc
    return CompiledConfig(snapshot, listeners, server_tls, used)
