"""Upstream clusters at run time: endpoint pools (kept across config swaps) and the cluster's load balancer."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping

from nantian.ir import AppProtocol, Cluster, Secret
from nantian.proxy import upstream_h2  # noqa: F401  (importing it registers the h2c pool factory)
from nantian.proxy.balancer import EndpointPicker
from nantian.proxy.exchange import EndpointPool, pool_factory
from nantian.proxy.metrics import ProxyMetrics
from nantian.proxy.tls_upstream import build_upstream_tls
from nantian.proxy.upstream_http1 import Http1Pool

__all__ = ["ClusterPlan", "PoolRegistry"]

log = logging.getLogger(__name__)

_PoolKey = tuple[str, str, str, int, str]


class ClusterPlan:
    """One cluster of a compiled config: its name, protocol and an endpoint picker over pools."""

    __slots__ = ("cluster", "name", "picker", "protocol")

    def __init__(self, cluster: Cluster, pools: list[tuple[EndpointPool, int]]) -> None:
        self.cluster = cluster
        self.name = cluster.name
        self.protocol = cluster.protocol
        self.picker: EndpointPicker[EndpointPool] = EndpointPicker(
            pools, cluster.load_balancer, load=lambda p: p.active_requests
        )

    def pick(self) -> EndpointPool | None:
        """An endpoint's pool, or ``None`` when the cluster has no (weighted) endpoint."""
        return self.picker.pick()


class PoolRegistry:
    """Endpoint pools by (cluster, protocol, endpoint, TLS), shared by successive compiled configs.

    A config swap keeps the pools (and their idle keep-alive connections) of unchanged endpoints; :meth:`retain`
    closes the others once the new config is in (their in-flight requests finish first).
    """

    def __init__(self, metrics: ProxyMetrics) -> None:
        self._pools: dict[_PoolKey, EndpointPool] = {}
        self._metrics = metrics

    def plan(self, cluster: Cluster, secrets: Mapping[str, Secret], used: set[_PoolKey]) -> ClusterPlan:
        """The :class:`ClusterPlan` for ``cluster``, reusing or making pools; records the keys in ``used``.

        :raises ConfigRejected: upstream TLS cannot be set up.
        """
        tls = build_upstream_tls(cluster.tls, secrets) if cluster.tls is not None else None
        tls_key = repr((cluster.tls, [secrets.get(n) for n in _tls_secret_names(cluster)])) if tls else ""
        pools: list[tuple[EndpointPool, int]] = []
        for ep in cluster.endpoints:
            key = (cluster.name, cluster.protocol.value, ep.address, ep.port, f"{cluster.connect_timeout}|{tls_key}")
            used.add(key)
            pool = self._pools.get(key)
            if pool is None:
                factory = pool_factory(cluster.protocol)
                if cluster.protocol in (AppProtocol.HTTP1, AppProtocol.WEBSOCKET) or factory is None:
                    pool = Http1Pool(
                        ep.address,
                        ep.port,
                        connect_timeout=cluster.connect_timeout,
                        ssl_context=tls.context if tls else None,
                        server_hostname=tls.server_hostname if tls else None,
                        verify_peer=tls.verify_peer if tls and tls.subject_alt_names else None,
                        on_connect_error=functools.partial(self._metrics.connect_error, cluster.name),
                    )
                else:
                    pool = factory(cluster, ep, tls.context if tls else None)
                self._pools[key] = pool
            pools.append((pool, ep.weight))
        return ClusterPlan(cluster, pools)

    def retain(self, used: set[_PoolKey]) -> None:
        """Close every pool not in ``used``."""
        for key in [k for k in self._pools if k not in used]:
            log.debug("proxy.pool_closed cluster=%s endpoint=%s:%s", key[0], key[2], key[3])
            self._pools.pop(key).close()

    def close(self) -> None:
        self.retain(set())


def _tls_secret_names(cluster: Cluster) -> list[str]:
    if cluster.tls is None:
        return []
    return [*cluster.tls.ca_secrets, *([cluster.tls.client_certificate] if cluster.tls.client_certificate else [])]
