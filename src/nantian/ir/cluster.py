"""Upstream clusters: the endpoints behind one Service port, how to talk to them and how to pick one."""

from __future__ import annotations

import enum

import attrs
from attrs import validators as v

__all__ = ["AppProtocol", "Cluster", "Endpoint", "LoadBalancer", "UpstreamTls"]


class AppProtocol(enum.Enum):
    HTTP1 = "http1"
    H2C = "h2c"
    WEBSOCKET = "ws"
    TCP = "tcp"
    UDP = "udp"


class LoadBalancer(enum.Enum):
    ROUND_ROBIN = "RoundRobin"
    RANDOM = "Random"
    LEAST_REQUEST = "LeastRequest"


@attrs.frozen(kw_only=True)
class Endpoint:
    address: str
    port: int = attrs.field(validator=[v.ge(1), v.le(65535)])
    weight: int = attrs.field(default=1, validator=v.ge(0))


@attrs.frozen(kw_only=True)
class UpstreamTls:
    """TLS to the backend (BackendTLSPolicy): verify against ``ca_secrets`` or the system roots."""

    sni: str
    ca_secrets: tuple[str, ...] = ()
    system_roots: bool = False
    subject_alt_names: tuple[str, ...] = ()
    client_certificate: str | None = None
    """Secret presented to the backend (Gateway ``spec.tls.backend.clientCertificateRef``)."""


@attrs.frozen(kw_only=True)
class Cluster:
    """``name`` is ``namespace/service:port``. An empty ``endpoints`` answers 503."""

    name: str
    protocol: AppProtocol = AppProtocol.HTTP1
    endpoints: tuple[Endpoint, ...] = ()
    tls: UpstreamTls | None = None
    load_balancer: LoadBalancer = LoadBalancer.ROUND_ROBIN
    connect_timeout: float = attrs.field(default=5.0, validator=v.gt(0))
