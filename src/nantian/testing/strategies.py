"""Hypothesis strategies for nantian: IR values, and Gateway API resource sets as documents or parsed objects.

Use them to property-test code built on nantian (a transport, a filter, a custom translator step)::

    from hypothesis import given
    from nantian import ir
    from nantian.testing import strategies as nst

    @given(nst.ir_snapshots())
    def test_my_transport_round_trips(snapshot: ir.Snapshot) -> None:
        assert decode(encode(snapshot)) == snapshot

    @given(nst.resource_sets())
    def test_translate_never_raises(resources: ResourceSet) -> None:
        translate(resources, TranslateOptions())

IR strategies (``ir_*``) build every IR type; :func:`ir_snapshots` builds whole snapshots with
:meth:`nantian.ir.Snapshot.build`, consistent (no dangling cluster/secret reference) by default.

Resource strategies generate Kubernetes-shaped dicts from small name pools (:data:`NAMESPACES`,
:data:`GATEWAYS`, :data:`SERVICES`, :data:`SECRETS`, :data:`ROUTES`, :data:`HOSTNAMES`) so references
resolve often and dangle sometimes. :func:`documents` gives a whole set as a list of dicts;
:func:`resource_sets` parses one into a :class:`nantian.resources.ResourceSet` (documents that fail to
parse become its ``errors``). TLS Secrets carry real PEM, generated once per process.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from nantian.testing._strategies_ir import (
    ir_client_validations,
    ir_clusters,
    ir_cors,
    ir_deltas,
    ir_endpoints,
    ir_header_modifiers,
    ir_http_matches,
    ir_http_routes,
    ir_listeners,
    ir_mirrors,
    ir_path_modifiers,
    ir_plugin_filters,
    ir_redirects,
    ir_retries,
    ir_rewrites,
    ir_secrets,
    ir_snapshot_pairs,
    ir_snapshots,
    ir_stream_routes,
    ir_timeouts,
    ir_tls_certificates,
    ir_upstream_tls,
    ir_virtual_hosts,
    ir_weighted_clusters,
)
from nantian.testing._strategies_kube import (
    GATEWAY_API,
    GATEWAYS,
    HOSTNAMES,
    NAMESPACES,
    OTHER_CONTROLLER,
    OUR_CONTROLLER,
    ROUTE_KINDS,
    ROUTES,
    SECRETS,
    SERVICE_PORTS,
    SERVICES,
    ExistingObjects,
    documents,
    gateway_class_documents,
    gateway_documents,
    grpc_route_documents,
    http_route_documents,
    json_values,
    malformed_documents,
    namespace_documents,
    reference_grant_documents,
    secret_documents,
    service_documents,
    tcp_route_documents,
    tls_route_documents,
    udp_route_documents,
)
from nantian.testing._strategies_pem import CERT_HOSTS, PemPair, pem_pair

if TYPE_CHECKING:
    from nantian.resources import ResourceSet

__all__ = [
    "CERT_HOSTS",
    "GATEWAYS",
    "GATEWAY_API",
    "HOSTNAMES",
    "NAMESPACES",
    "OTHER_CONTROLLER",
    "OUR_CONTROLLER",
    "ROUTES",
    "ROUTE_KINDS",
    "SECRETS",
    "SERVICES",
    "SERVICE_PORTS",
    "ExistingObjects",
    "PemPair",
    "build_resource_set",
    "documents",
    "gateway_class_documents",
    "gateway_documents",
    "grpc_route_documents",
    "http_route_documents",
    "ir_client_validations",
    "ir_clusters",
    "ir_cors",
    "ir_deltas",
    "ir_endpoints",
    "ir_header_modifiers",
    "ir_http_matches",
    "ir_http_routes",
    "ir_listeners",
    "ir_mirrors",
    "ir_path_modifiers",
    "ir_plugin_filters",
    "ir_redirects",
    "ir_retries",
    "ir_rewrites",
    "ir_secrets",
    "ir_snapshot_pairs",
    "ir_snapshots",
    "ir_stream_routes",
    "ir_timeouts",
    "ir_tls_certificates",
    "ir_upstream_tls",
    "ir_virtual_hosts",
    "ir_weighted_clusters",
    "json_values",
    "malformed_documents",
    "namespace_documents",
    "pem_pair",
    "reference_grant_documents",
    "resource_sets",
    "secret_documents",
    "service_documents",
    "shuffled",
    "tcp_route_documents",
    "tls_route_documents",
    "udp_route_documents",
]


def build_resource_set(docs: Sequence[Mapping[str, Any]]) -> ResourceSet:
    """Parse ``docs`` with :func:`nantian.resources.parse_object` into a ResourceSet.

    Documents that raise :class:`~nantian.errors.ParseError` end up in ``ResourceSet.errors``; every other
    document is an object of the set, with its dict as the raw form.
    """
    from nantian.errors import ParseError
    from nantian.resources import ResourceSet, parse_object

    objects = []
    raw = {}
    errors = []
    for doc in docs:
        try:
            obj = parse_object(doc)
        except ParseError as exc:
            errors.append(exc)
            continue
        objects.append(obj)
        raw[obj.ref] = doc
    return ResourceSet.from_objects(objects, raw=raw, errors=tuple(errors))


def resource_sets(
    *,
    valid: bool | None = True,
    controller_name: str = OUR_CONTROLLER,
    max_gateways: int = 3,
    max_routes: int = 6,
    cel_rules: bool = True,
) -> st.SearchStrategy[ResourceSet]:
    """:func:`documents` parsed into a :class:`~nantian.resources.ResourceSet` by :func:`build_resource_set`."""
    docs = documents(
        valid=valid,
        controller_name=controller_name,
        max_gateways=max_gateways,
        max_routes=max_routes,
        cel_rules=cel_rules,
    )
    return docs.map(build_resource_set)


def shuffled(docs: Sequence[Mapping[str, Any]], seed: int) -> list[Mapping[str, Any]]:
    """``docs`` in another order (deterministic for ``seed``): input order must never show in a translation."""
    out = list(docs)
    random.Random(seed).shuffle(out)
    return out
