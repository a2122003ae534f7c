"""The internal representation: what a data plane needs to serve traffic, with no Kubernetes types.

Frozen attrs values all the way down; :mod:`nantian.ir._convert` is the codec, :func:`diff`/:func:`apply`
move between snapshots.
"""

from nantian.ir._convert import SCHEMA_VERSION, converter, dumps, loads
from nantian.ir.cluster import AppProtocol, Cluster, Endpoint, LoadBalancer, UpstreamTls
from nantian.ir.diff import Delta, apply, diff
from nantian.ir.listener import (
    ClientValidation,
    ClientValidationMode,
    Listener,
    Protocol,
    StreamRoute,
    TlsCertificate,
    TlsMode,
    VirtualHost,
)
from nantian.ir.route import (
    Cors,
    Header,
    HeaderMatch,
    HeaderModifier,
    HttpMatch,
    HttpRoute,
    Mirror,
    PathMatch,
    PathMatchType,
    PathModifier,
    PathModifierType,
    PluginFilter,
    QueryMatch,
    Redirect,
    Retry,
    Rewrite,
    StringMatchType,
    Timeouts,
    WeightedCluster,
)
from nantian.ir.secret import Secret
from nantian.ir.snapshot import Resource, ResourceKey, ResourceType, Snapshot, resource_type

__all__ = [
    "SCHEMA_VERSION",
    "AppProtocol",
    "ClientValidation",
    "ClientValidationMode",
    "Cluster",
    "Cors",
    "Delta",
    "Endpoint",
    "Header",
    "HeaderMatch",
    "HeaderModifier",
    "HttpMatch",
    "HttpRoute",
    "Listener",
    "LoadBalancer",
    "Mirror",
    "PathMatch",
    "PathMatchType",
    "PathModifier",
    "PathModifierType",
    "PluginFilter",
    "Protocol",
    "QueryMatch",
    "Redirect",
    "Resource",
    "ResourceKey",
    "ResourceType",
    "Retry",
    "Rewrite",
    "Secret",
    "Snapshot",
    "StreamRoute",
    "StringMatchType",
    "Timeouts",
    "TlsCertificate",
    "TlsMode",
    "UpstreamTls",
    "VirtualHost",
    "WeightedCluster",
    "apply",
    "converter",
    "diff",
    "dumps",
    "loads",
    "resource_type",
]
