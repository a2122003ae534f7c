"""IR for the e2e tests that run the proxy runtime in-process: a plain HTTP listener, prefix routes, local clusters."""

from __future__ import annotations

from collections.abc import Sequence

from nantian import ir

GATEWAY = "ns/gw"


def prefix_route(name: str, prefix: str, cluster: str, *, grpc: bool = False) -> ir.HttpRoute:
    """Rule 0/0 of the HTTPRoute ``ns/NAME``: paths under ``prefix`` go to ``cluster``."""
    return ir.HttpRoute(
        name=f"HTTPRoute/ns/{name}/0/0",
        route=f"HTTPRoute/ns/{name}",
        match=ir.HttpMatch(path=ir.PathMatch(type=ir.PathMatchType.PREFIX, value=prefix)),
        backends=(ir.WeightedCluster(cluster=cluster),),
        grpc=grpc,
    )


def http_listener(port: int, routes: Sequence[ir.HttpRoute], *, name: str = f"{GATEWAY}/80/HTTP") -> ir.Listener:
    """The listener ``name`` on 127.0.0.1:``port``: section ``ns/gw/http``, one ``*`` virtual host with ``routes``."""
    vhost = ir.VirtualHost(section=f"{GATEWAY}/http", section_hostname=None, hostname="*", routes=tuple(routes))
    return ir.Listener(
        name=name,
        gateway=GATEWAY,
        address="127.0.0.1",
        port=port,
        protocol=ir.Protocol.HTTP,
        virtual_hosts=(vhost,),
    )


def local_cluster(
    name: str,
    port: int,
    protocol: ir.AppProtocol = ir.AppProtocol.HTTP1,
    *,
    connect_timeout: float = 2.0,
    tls: ir.UpstreamTls | None = None,
) -> ir.Cluster:
    """The cluster ``name`` with one endpoint, 127.0.0.1:``port``."""
    return ir.Cluster(
        name=name,
        protocol=protocol,
        endpoints=(ir.Endpoint(address="127.0.0.1", port=port),),
        connect_timeout=connect_timeout,
        tls=tls,
    )
