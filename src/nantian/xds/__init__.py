"""The configuration transport: snapshots from a :class:`SnapshotStore` to data planes.

``gateway.control.v1`` over gRPC (:class:`XdsServer`, :class:`XdsClient`), the in-process transport, the
per-node views and the node registry the admin API shows.
"""

from nantian.xds.client import Backoff, XdsClient
from nantian.xds.consumer import ConfigConsumer, ListenerStateLike, status_of
from nantian.xds.filtering import for_gateways
from nantian.xds.registry import NackRecord, NodeRecord, NodeRegistry
from nantian.xds.server import XdsServer
from nantian.xds.status import Health, ListenerReport, StatusReport
from nantian.xds.store import SnapshotStore
from nantian.xds.tls import ClientTls, ServerTls
from nantian.xds.transport import (
    ClientOptions,
    GrpcTransport,
    InProcessTransport,
    ServerOptions,
    Transport,
    TransportClient,
    TransportServer,
)

__all__ = [
    "Backoff",
    "ClientOptions",
    "ClientTls",
    "ConfigConsumer",
    "GrpcTransport",
    "Health",
    "InProcessTransport",
    "ListenerReport",
    "ListenerStateLike",
    "NackRecord",
    "NodeRecord",
    "NodeRegistry",
    "ServerOptions",
    "ServerTls",
    "SnapshotStore",
    "StatusReport",
    "Transport",
    "TransportClient",
    "TransportServer",
    "XdsClient",
    "XdsServer",
    "for_gateways",
    "status_of",
]
