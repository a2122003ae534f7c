"""An Envoy bootstrap that takes all its configuration from a nantian control plane over ADS."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["bootstrap"]


def bootstrap(
    node_id: str,
    xds_address: str,
    *,
    admin_address: str = "127.0.0.1:0",
    gateways: Iterable[str] = (),
    port_offset: int = 0,
    cluster: str = "nantian",
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_server_name: str | None = None,
) -> dict[str, Any]:
    """The bootstrap document (write it as JSON or YAML and run ``envoy -c FILE``).

    :param xds_address: ``host:port`` of the control plane's Envoy ADS server (plaintext).
    :param gateways: Serve only these Gateways (``namespace/name``); every Gateway when empty.
    :param port_offset: Added to every listener port (as ``nantian proxy --port-offset``).
    :param tls_ca: PEM file to verify the control plane with: the ADS connection uses TLS (``--xds-tls-*`` on
        the controller); with ``tls_cert`` and ``tls_key`` Envoy presents a client certificate (mTLS).
    """
    host, port = xds_address.rsplit(":", 1)
    admin_host, admin_port = admin_address.rsplit(":", 1)
    metadata: dict[str, Any] = {}
    names = sorted(set(gateways))
    if names:
        metadata["gateways"] = ",".join(names)
    if port_offset:
        metadata["port_offset"] = port_offset
    node: dict[str, Any] = {"id": node_id, "cluster": cluster, "metadata": metadata}
    source = {"ads": {}, "resource_api_version": "V3"}
    xds_cluster: dict[str, Any] = {
        "name": "nantian_xds",
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": "nantian_xds",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": int(port)}}}}
                    ]
                }
            ],
        },
    }
    if tls_ca is not None:
        context: dict[str, Any] = {"validation_context": {"trusted_ca": {"filename": tls_ca}}}
        if tls_cert is not None and tls_key is not None:
            context["tls_certificates"] = [
                {"certificate_chain": {"filename": tls_cert}, "private_key": {"filename": tls_key}}
            ]
        upstream: dict[str, Any] = {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": context,
        }
        if tls_server_name:
            upstream["sni"] = tls_server_name
        xds_cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": upstream}
    return {
        "node": node,
        "admin": {"address": {"socket_address": {"address": admin_host, "port_value": int(admin_port)}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "nantian_xds"}}],
            },
            "cds_config": source,
            "lds_config": source,
        },
        "static_resources": {"clusters": [xds_cluster]},
    }
