"""IR snapshot -> Envoy v3 resources (Listeners with inline route configuration, Clusters). Pure functions.

Supported: HTTP and HTTPS (TLS termination, SNI-selected certificates) listeners, TCP listeners and TLS listeners
(passthrough by SNI, or terminated) with their stream routes (weighted backends); route matches on path
(exact, segment-aware prefix, regex), headers, query parameters and method; weighted backends with their
header modifiers; request/response header modifiers; redirects; host and path rewrites; mirrors; request
and per-try timeouts; retries; direct responses; clusters with static endpoints, load-balancing policy,
h2c and upstream TLS (CA bundle or system roots, SNI, subject alt names, client certificate).

UDP listeners go to their route's first backend (Envoy's UDP proxy has no weights). Not translated (logged,
and listed in the module-level :data:`UNSUPPORTED`): plugin filters and 421 answers for misdirected requests.
CORS uses Envoy's CORS filter; AllowInsecureFallback accepts untrusted client certificates (and none); local
answers to gRPC requests are gRPC-shaped by Envoy itself (checked: a direct 500 reaches a gRPC client as
UNKNOWN, trailers-only).
"""

from __future__ import annotations

import logging

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import any_pb2, wrappers_pb2

from nantian.ir import (
    AppProtocol,
    ClientValidationMode,
    Cluster,
    Listener,
    LoadBalancer,
    Protocol,
    Secret,
    Snapshot,
    StreamRoute,
    TlsMode,
    VirtualHost,
    WeightedCluster,
)
from nantian.xds.envoy._pack import pack, seconds
from nantian.xds.envoy.routes import INVALID_BACKEND, route_configuration

__all__ = ["CLUSTER_TYPE", "INVALID_BACKEND", "LISTENER_TYPE", "UNSUPPORTED", "clusters", "listeners", "resources"]

log = logging.getLogger(__name__)

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

UNSUPPORTED = (
    "UDP weights (the first backend gets the traffic)",
    "plugin filters",
    "421 for misdirected requests",
)


def _secret_text(secrets: dict[str, Secret], name: str, field: str) -> str | None:
    secret = secrets.get(name)
    return None if secret is None else getattr(secret, field)


# --- clusters ---------------------------------------------------------------------------------------
_LB = {
    LoadBalancer.ROUND_ROBIN: cluster_pb2.Cluster.ROUND_ROBIN,
    LoadBalancer.RANDOM: cluster_pb2.Cluster.RANDOM,
    LoadBalancer.LEAST_REQUEST: cluster_pb2.Cluster.LEAST_REQUEST,
}


def cluster(c: Cluster, secrets: dict[str, Secret]) -> cluster_pb2.Cluster:
    """One Envoy cluster: static endpoints (an empty cluster answers 503), its LB policy, h2c, upstream TLS."""
    out = cluster_pb2.Cluster(
        name=c.name,
        type=cluster_pb2.Cluster.STATIC,
        lb_policy=_LB[c.load_balancer],
        connect_timeout=seconds(c.connect_timeout),
    )
    endpoints = [
        endpoint_components_pb2.LbEndpoint(
            endpoint=endpoint_components_pb2.Endpoint(
                address=address_pb2.Address(
                    socket_address=address_pb2.SocketAddress(address=e.address, port_value=e.port)
                )
            ),
            load_balancing_weight=wrappers_pb2.UInt32Value(value=e.weight),
        )
        for e in c.endpoints
        if e.weight > 0
    ]
    out.load_assignment.CopyFrom(
        endpoint_pb2.ClusterLoadAssignment(
            cluster_name=c.name, endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=endpoints)]
        )
    )
    if c.protocol is AppProtocol.H2C:
        options = http_protocol_options_pb2.HttpProtocolOptions()
        options.explicit_http_config.http2_protocol_options.SetInParent()
        out.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].CopyFrom(
            pack(options)
        )
    if c.tls is not None:
        tls = tls_pb2.UpstreamTlsContext(sni=c.tls.sni)
        validation = tls.common_tls_context.validation_context
        cas = [_secret_text(secrets, s, "ca_bundle") for s in c.tls.ca_secrets]
        bundle = "".join(x for x in cas if x)
        if bundle:
            validation.trusted_ca.inline_string = bundle
        elif c.tls.system_roots:
            validation.trusted_ca.filename = "/etc/ssl/certs/ca-certificates.crt"
        for san in c.tls.subject_alt_names or (c.tls.sni,):
            validation.match_typed_subject_alt_names.add(
                san_type=common_pb2.SubjectAltNameMatcher.DNS, matcher=string_pb2.StringMatcher(exact=san)
            )
        if c.tls.client_certificate is not None:
            chain = _secret_text(secrets, c.tls.client_certificate, "certificate_chain")
            key = _secret_text(secrets, c.tls.client_certificate, "private_key")
            if chain and key:
                cert = tls.common_tls_context.tls_certificates.add()
                cert.certificate_chain.inline_string = chain
                cert.private_key.inline_string = key
        out.transport_socket.name = "envoy.transport_sockets.tls"
        out.transport_socket.typed_config.CopyFrom(pack(tls))
    return out


def clusters(snapshot: Snapshot) -> list[cluster_pb2.Cluster]:
    secrets = {s.name: s for s in snapshot.secrets}
    return [cluster(c, secrets) for c in snapshot.clusters]


# --- listeners --------------------------------------------------------------------------------------
def _hcm(lst: Listener, port: int) -> listener_components_pb2.Filter:
    manager = hcm_pb2.HttpConnectionManager(stat_prefix=lst.name.replace("/", "_"))
    manager.route_config.CopyFrom(route_configuration(lst.name, lst.virtual_hosts, port))
    manager.http_filters.add(name="envoy.filters.http.cors", typed_config=pack(_cors_filter()))
    manager.http_filters.add(name="envoy.filters.http.router", typed_config=pack(router_pb2.Router()))
    return listener_components_pb2.Filter(
        name="envoy.filters.network.http_connection_manager", typed_config=pack(manager)
    )


def listener(lst: Listener, secrets: dict[str, Secret], port_offset: int = 0) -> listener_pb2.Listener | None:
    """One Envoy listener, or ``None`` (logged) for a protocol this translation does not support."""
    port = lst.port + port_offset
    out = listener_pb2.Listener(
        name=lst.name,
        address=address_pb2.Address(socket_address=address_pb2.SocketAddress(address=lst.address, port_value=port)),
    )
    if lst.protocol is Protocol.HTTP:
        out.filter_chains.add(filters=[_hcm(lst, port)])
        return out
    if lst.protocol is Protocol.HTTPS and lst.certificates:
        out.listener_filters.add(
            name="envoy.filters.listener.tls_inspector",
            typed_config=pack(_tls_inspector()),
        )
        by_host: dict[str | None, list[VirtualHost]] = {}
        for vh in lst.virtual_hosts:
            by_host.setdefault(vh.section_hostname, []).append(vh)
        for cert in lst.certificates:
            chain = _secret_text(secrets, cert.secret, "certificate_chain")
            key = _secret_text(secrets, cert.secret, "private_key")
            if not chain or not key:
                log.warning("envoy.missing_certificate listener=%s secret=%s", lst.name, cert.secret)
                continue
            tls = tls_pb2.DownstreamTlsContext()
            pair = tls.common_tls_context.tls_certificates.add()
            pair.certificate_chain.inline_string = chain
            pair.private_key.inline_string = key
            tls.common_tls_context.alpn_protocols.extend(["h2", "http/1.1"])
            if cert.client_validation is not None:
                cas = [_secret_text(secrets, s, "ca_bundle") for s in cert.client_validation.ca_secrets]
                validation = tls.common_tls_context.validation_context
                validation.trusted_ca.inline_string = "".join(x for x in cas if x)
                if cert.client_validation.mode is ClientValidationMode.ALLOW_INSECURE_FALLBACK:
                    validation.trust_chain_verification = validation.ACCEPT_UNTRUSTED
                    tls.require_client_certificate.value = False
                else:
                    tls.require_client_certificate.value = True
            chain_out = out.filter_chains.add(filters=[_hcm(lst, port)])
            if cert.hostname is not None:
                chain_out.filter_chain_match.server_names.append(cert.hostname)
            chain_out.transport_socket.name = "envoy.transport_sockets.tls"
            chain_out.transport_socket.typed_config.CopyFrom(pack(tls))
        return out if out.filter_chains else None
    if lst.protocol is Protocol.TCP:
        first = next((r for r in lst.stream_routes if any(b.weight > 0 for b in r.backends)), None)
        if first is not None:
            out.filter_chains.add(filters=[_tcp_proxy(lst, first)])
        return out if out.filter_chains else None
    if lst.protocol is Protocol.TLS:
        out.listener_filters.add(name="envoy.filters.listener.tls_inspector", typed_config=pack(_tls_inspector()))
        terminate = lst.tls_mode is TlsMode.TERMINATE
        for sr in lst.stream_routes:
            if not any(b.weight > 0 for b in sr.backends):
                continue  # no live backend: connections for it match no chain and are closed
            chain = out.filter_chains.add(filters=[_tcp_proxy(lst, sr)])
            chain.filter_chain_match.server_names.extend(h for h in sr.hostnames if h != "*")
            if terminate:
                tls = _downstream_tls(lst, secrets)
                if tls is None:
                    log.warning("envoy.missing_certificate listener=%s", lst.name)
                    del out.filter_chains[-1]
                    continue
                chain.transport_socket.name = "envoy.transport_sockets.tls"
                chain.transport_socket.typed_config.CopyFrom(pack(tls))
        return out if out.filter_chains else None
    if lst.protocol is Protocol.UDP:
        first = next((r for r in lst.stream_routes if any(b.weight > 0 for b in r.backends)), None)
        if first is None:
            return None
        live = [b for b in first.backends if b.weight > 0]
        if len(live) > 1:
            log.warning("envoy.udp_single_backend listener=%s route=%s", lst.name, first.name)
        out.address.socket_address.protocol = address_pb2.SocketAddress.UDP
        out.listener_filters.add(
            name="envoy.filters.udp_listener.udp_proxy", typed_config=pack(_udp_proxy(lst, live[0]))
        )
        return out
    log.warning("envoy.unsupported listener=%s protocol=%s", lst.name, lst.protocol.value)
    return None


def _udp_proxy(lst: Listener, backend: WeightedCluster) -> object:
    from envoy.extensions.filters.udp.udp_proxy.v3 import route_pb2 as udp_route_pb2
    from envoy.extensions.filters.udp.udp_proxy.v3 import udp_proxy_pb2
    from xds.core.v3 import extension_pb2

    config = udp_proxy_pb2.UdpProxyConfig(stat_prefix=lst.name.replace("/", "_"))
    config.matcher.on_no_match.action.CopyFrom(
        extension_pb2.TypedExtensionConfig(
            name="route", typed_config=pack(udp_route_pb2.Route(cluster=backend.cluster or INVALID_BACKEND))
        )
    )
    return config


def _tcp_proxy(lst: Listener, route: StreamRoute) -> listener_components_pb2.Filter:
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=f"{lst.name}/{route.name}".replace("/", "_"))
    live = [b for b in route.backends if b.weight > 0]
    if len(live) == 1:
        proxy.cluster = live[0].cluster or INVALID_BACKEND
    else:
        for b in live:
            proxy.weighted_clusters.clusters.add(name=b.cluster or INVALID_BACKEND, weight=b.weight)
    return listener_components_pb2.Filter(name="envoy.filters.network.tcp_proxy", typed_config=pack(proxy))


def _downstream_tls(lst: Listener, secrets: dict[str, Secret]) -> tls_pb2.DownstreamTlsContext | None:
    """Every certificate of the listener in one context (Envoy picks by SNI among them)."""
    tls = tls_pb2.DownstreamTlsContext()
    for cert in lst.certificates:
        chain = _secret_text(secrets, cert.secret, "certificate_chain")
        key = _secret_text(secrets, cert.secret, "private_key")
        if chain and key:
            pair = tls.common_tls_context.tls_certificates.add()
            pair.certificate_chain.inline_string = chain
            pair.private_key.inline_string = key
    return tls if tls.common_tls_context.tls_certificates else None


def _cors_filter() -> object:
    from envoy.extensions.filters.http.cors.v3 import cors_pb2

    return cors_pb2.Cors()


def _tls_inspector() -> object:
    from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2

    return tls_inspector_pb2.TlsInspector()


def listeners(snapshot: Snapshot, port_offset: int = 0) -> list[listener_pb2.Listener]:
    secrets = {s.name: s for s in snapshot.secrets}
    out = [listener(lst, secrets, port_offset) for lst in snapshot.listeners]
    return [x for x in out if x is not None]


def resources(snapshot: Snapshot, port_offset: int = 0) -> dict[str, list[any_pb2.Any]]:
    """Every Envoy resource of ``snapshot`` by type URL, packed, in name order."""
    return {
        CLUSTER_TYPE: [pack(c) for c in clusters(snapshot)],
        LISTENER_TYPE: [pack(x) for x in listeners(snapshot, port_offset)],
    }
