"""IR -> Envoy v3 resources: what each IR feature becomes."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from nantian import ir
from nantian.xds.envoy.resources import CLUSTER_TYPE, INVALID_BACKEND, LISTENER_TYPE, cluster, resources
from nantian.xds.envoy.routes import route


def _route(**kwargs: object) -> ir.HttpRoute:
    return ir.HttpRoute(name="r", route="HTTPRoute/ns/r", **kwargs)  # type: ignore[arg-type]


def test_matches() -> None:
    m = route(
        _route(
            match=ir.HttpMatch(
                path=ir.PathMatch(type=ir.PathMatchType.PREFIX, value="/v2/"),
                headers=(ir.HeaderMatch(name="x-a", value="1"),),
                query=(ir.QueryMatch(name="q", value="^a+$", type=ir.StringMatchType.REGEX),),
                method="POST",
            ),
            backends=(ir.WeightedCluster(cluster="ns/a:80"),),
        )
    ).match
    assert m.path_separated_prefix == "/v2"
    assert [(h.name, h.string_match.exact) for h in m.headers] == [("x-a", "1"), (":method", "POST")]
    assert m.query_parameters[0].string_match.safe_regex.regex == "^a+$"
    assert route(_route(match=ir.HttpMatch(path=ir.PathMatch(value="/")))).match.prefix == "/"
    exact = ir.HttpMatch(path=ir.PathMatch(type=ir.PathMatchType.EXACT, value="/x"))
    assert route(_route(match=exact)).match.path == "/x"


def test_backends_weights_and_invalid_refs() -> None:
    single = route(_route(backends=(ir.WeightedCluster(cluster="ns/a:80"),)))
    assert single.route.cluster == "ns/a:80"
    split = route(_route(backends=(ir.WeightedCluster(cluster="ns/a:80", weight=3), ir.WeightedCluster(cluster=None))))
    assert [(c.name, c.weight.value) for c in split.route.weighted_clusters.clusters] == [
        ("ns/a:80", 3),
        (INVALID_BACKEND, 1),
    ]
    assert split.route.cluster_not_found_response_code == split.route.INTERNAL_SERVER_ERROR
    assert route(_route()).direct_response.status == 500
    assert route(_route(direct_status=503)).direct_response.status == 503
    zero = route(_route(backends=(ir.WeightedCluster(cluster="ns/a:80", weight=0),)))
    assert zero.direct_response.status == 500


def test_filters() -> None:
    r = route(
        _route(
            request_headers=ir.HeaderModifier(set=(ir.Header(name="x-s", value="1"),), remove=("x-r",)),
            response_headers=ir.HeaderModifier(add=(ir.Header(name="x-a", value="2"),)),
            rewrite=ir.Rewrite(hostname="h", path=ir.PathModifier(type=ir.PathModifierType.PREFIX, value="/new")),
            mirrors=(ir.Mirror(cluster="ns/m:80", percent=50.0),),
            timeouts=ir.Timeouts(request=2.0, backend_request=0.5),
            retry=ir.Retry(codes=(503,), attempts=2),
            backends=(ir.WeightedCluster(cluster="ns/a:80"),),
        )
    )
    assert r.request_headers_to_add[0].header.key == "x-s" and list(r.request_headers_to_remove) == ["x-r"]
    assert r.response_headers_to_add[0].header.value == "2"
    assert r.route.host_rewrite_literal == "h" and r.route.prefix_rewrite == "/new"
    assert r.route.request_mirror_policies[0].runtime_fraction.default_value.numerator == 500_000
    assert r.route.timeout.ToMilliseconds() == 2000
    assert r.route.retry_policy.per_try_timeout.ToMilliseconds() == 500
    assert r.route.retry_policy.num_retries.value == 2 and list(r.route.retry_policy.retriable_status_codes) == [503]
    redirect = route(_route(redirect=ir.Redirect(scheme="https", port=8443, status_code=301), backends=())).redirect
    assert (redirect.scheme_redirect, redirect.port_redirect) == ("https", 8443)
    assert redirect.response_code == redirect.MOVED_PERMANENTLY


def test_cluster() -> None:
    secrets = {"ns/ca": ir.Secret(name="ns/ca", ca_bundle="-----CA-----")}
    c = cluster(
        ir.Cluster(
            name="ns/a:443",
            protocol=ir.AppProtocol.H2C,
            endpoints=(
                ir.Endpoint(address="10.0.0.1", port=443, weight=2),
                ir.Endpoint(address="10.0.0.2", port=443, weight=0),
            ),
            tls=ir.UpstreamTls(sni="a.example", ca_secrets=("ns/ca",)),
            load_balancer=ir.LoadBalancer.LEAST_REQUEST,
        ),
        secrets,
    )
    assert c.type == cluster_pb2.Cluster.STATIC and c.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST
    endpoints = c.load_assignment.endpoints[0].lb_endpoints
    assert [(e.endpoint.address.socket_address.address, e.load_balancing_weight.value) for e in endpoints] == [
        ("10.0.0.1", 2)
    ]
    assert "envoy.extensions.upstreams.http.v3.HttpProtocolOptions" in c.typed_extension_protocol_options
    tls = tls_pb2.UpstreamTlsContext()
    c.transport_socket.typed_config.Unpack(tls)
    assert tls.sni == "a.example"
    assert tls.common_tls_context.validation_context.trusted_ca.inline_string == "-----CA-----"


def test_listeners_and_port_offset() -> None:
    http = ir.Listener(
        name="ns/gw/80/HTTP",
        gateway="ns/gw",
        address="127.0.0.2",
        port=80,
        protocol=ir.Protocol.HTTP,
        virtual_hosts=(
            ir.VirtualHost(section="ns/gw/a", section_hostname=None, hostname="*", routes=(_route(),)),
            ir.VirtualHost(section="ns/gw/b", section_hostname="x.example", hostname="x.example", routes=(_route(),)),
        ),
    )
    tcp = ir.Listener(name="ns/gw/9/TCP", gateway="ns/gw", address="127.0.0.2", port=9, protocol=ir.Protocol.TCP)
    snapshot = ir.Snapshot.build([http, tcp])
    out = resources(snapshot, port_offset=10000)
    assert set(out) == {CLUSTER_TYPE, LISTENER_TYPE}
    (packed,) = out[LISTENER_TYPE]  # TCP is not translated
    lst = listener_pb2.Listener()
    packed.Unpack(lst)
    assert lst.address.socket_address.port_value == 10080
    manager = hcm_pb2.HttpConnectionManager()
    lst.filter_chains[0].filters[0].typed_config.Unpack(manager)
    domains = [list(vh.domains) for vh in manager.route_config.virtual_hosts]
    assert domains == [["x.example", "x.example:10080"], ["*"]]  # the specific section first


def test_cors_policy() -> None:
    import re

    from envoy.extensions.filters.http.cors.v3 import cors_pb2

    r = route(
        _route(
            cors=ir.Cors(
                allow_origins=("https://app.example", "https://*.example.com", "*"),
                allow_methods=("GET", "POST"),
                max_age=60,
                allow_credentials=True,
            ),
            backends=(ir.WeightedCluster(cluster="ns/a:80"),),
        )
    )
    policy = cors_pb2.CorsPolicy()
    r.typed_per_filter_config["envoy.filters.http.cors"].Unpack(policy)
    exact, wildcard, anything = policy.allow_origin_string_match
    assert exact.exact == "https://app.example"
    assert re.fullmatch(wildcard.safe_regex.regex, "https://a.example.com")
    assert not re.fullmatch(wildcard.safe_regex.regex, "https://example.org")
    assert anything.safe_regex.regex == ".*"
    assert policy.allow_methods == "GET, POST" and policy.max_age == "60" and policy.allow_credentials.value
