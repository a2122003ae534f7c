"""The IR codec: every IR type round-trips through dumps/loads, with camelCase keys and strict structuring."""

from __future__ import annotations

import json
from typing import Any

import cattrs
import pytest

from nantian import ir

ROUTE = ir.HttpRoute(
    name="HTTPRoute/ns/r/0/0",
    route="HTTPRoute/ns/r",
    rule_name="first",
    match=ir.HttpMatch(
        path=ir.PathMatch(type=ir.PathMatchType.EXACT, value="/a"),
        headers=(ir.HeaderMatch(name="x-v", value="1", type=ir.StringMatchType.REGEX),),
        query=(ir.QueryMatch(name="q", value="2"),),
        method="GET",
    ),
    request_headers=ir.HeaderModifier(set=(ir.Header(name="a", value="b"),), add=(), remove=("c",)),
    response_headers=ir.HeaderModifier(add=(ir.Header(name="d", value="e"),)),
    redirect=ir.Redirect(scheme="https", hostname="h", port=443, status_code=301),
    rewrite=ir.Rewrite(hostname="r", path=ir.PathModifier(type=ir.PathModifierType.PREFIX, value="/p")),
    mirrors=(ir.Mirror(cluster="ns/m:80", percent=12.5),),
    cors=ir.Cors(allow_origins=("*",), allow_methods=("GET",), max_age=5, allow_credentials=True),
    plugin_filters=(ir.PluginFilter(name="g/k/ns/n", config='{"a":1}'),),
    backends=(
        ir.WeightedCluster(cluster="ns/s:80", weight=3, request_headers=ir.HeaderModifier(remove=("x",))),
        ir.WeightedCluster(cluster=None, weight=1),
    ),
    direct_status=500,
    timeouts=ir.Timeouts(request=1.5, backend_request=0.25),
    retry=ir.Retry(codes=(502, 503), attempts=3, backoff=0.1, connection_errors=False),
    grpc=True,
)
CLUSTER = ir.Cluster(
    name="ns/s:80",
    protocol=ir.AppProtocol.H2C,
    endpoints=(ir.Endpoint(address="10.0.0.1", port=8080, weight=2), ir.Endpoint(address="::1", port=1)),
    tls=ir.UpstreamTls(sni="s.example", ca_secrets=("ns/ca",), subject_alt_names=("x",), client_certificate="ns/c"),
    load_balancer=ir.LoadBalancer.LEAST_REQUEST,
    connect_timeout=0.5,
)
LISTENER = ir.Listener(
    name="ns/gw/443/HTTPS",
    gateway="ns/gw",
    address="127.0.0.2",
    port=443,
    protocol=ir.Protocol.HTTPS,
    tls_mode=ir.TlsMode.TERMINATE,
    certificates=(
        ir.TlsCertificate(
            hostname="*.example.com",
            secret="ns/tls",
            section="ns/gw/https",
            client_validation=ir.ClientValidation(
                ca_secrets=("ns/ca",), mode=ir.ClientValidationMode.ALLOW_INSECURE_FALLBACK
            ),
        ),
    ),
    virtual_hosts=(
        ir.VirtualHost(
            section="ns/gw/https", section_hostname="*.example.com", hostname="a.example.com", routes=(ROUTE,)
        ),
    ),
    stream_routes=(
        ir.StreamRoute(
            name="TLSRoute/ns/t/0",
            route="TLSRoute/ns/t",
            section="ns/gw/tls",
            hostnames=("t.example.com",),
            backends=(ir.WeightedCluster(cluster="ns/s:80"),),
        ),
    ),
    detect_misdirected=False,
)
SECRET = ir.Secret(name="ns/tls", certificate_chain="CERT", private_key="KEY", ca_bundle="CA")

VALUES: list[Any] = [
    ROUTE,
    ROUTE.match,
    ROUTE.redirect,
    ROUTE.rewrite,
    ROUTE.cors,
    ROUTE.retry,
    ROUTE.timeouts,
    CLUSTER,
    CLUSTER.tls,
    LISTENER,
    LISTENER.virtual_hosts[0],
    LISTENER.stream_routes[0],
    LISTENER.certificates[0],
    SECRET,
    ir.Snapshot.build([LISTENER], [CLUSTER], [SECRET]),
    ir.Snapshot.build(),
    ir.HttpRoute(name="n", route="r"),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_round_trip(value: Any) -> None:
    data = ir.dumps(value)
    assert ir.loads(data, type(value)) == value
    assert ir.dumps(ir.loads(data, type(value))) == data


def test_wire_names_are_camel_case_and_keys_sorted() -> None:
    doc = json.loads(ir.dumps(ROUTE))
    assert "ruleName" in doc and "rule_name" not in doc
    assert doc["timeouts"] == {"backendRequest": 0.25, "request": 1.5}
    assert doc["match"]["path"] == {"type": "Exact", "value": "/a"}
    assert list(doc) == sorted(doc)
    assert json.loads(ir.dumps(CLUSTER))["loadBalancer"] == "LeastRequest"


def test_defaults_are_written_out() -> None:
    doc = json.loads(ir.dumps(ir.Secret(name="a")))
    assert doc == {"caBundle": None, "certificateChain": None, "name": "a", "privateKey": None}


def test_equal_values_give_equal_bytes() -> None:
    a = ir.Endpoint(address="10.0.0.1", port=80)
    b = ir.Endpoint(address="10.0.0.1", port=80, weight=1)
    assert ir.dumps(a) == ir.dumps(b)


def test_unknown_keys_are_refused() -> None:
    doc = json.loads(ir.dumps(SECRET))
    doc["extra"] = 1
    with pytest.raises(cattrs.BaseValidationError):
        ir.loads(json.dumps(doc), ir.Secret)


def test_bad_values_are_refused_with_a_path() -> None:
    doc = json.loads(ir.dumps(CLUSTER))
    doc["endpoints"][0]["port"] = 0
    with pytest.raises(cattrs.BaseValidationError) as info:
        ir.loads(json.dumps(doc), ir.Cluster)
    assert any("endpoints" in line for line in cattrs.transform_error(info.value))


def test_unknown_enum_value_is_refused() -> None:
    doc = json.loads(ir.dumps(LISTENER))
    doc["protocol"] = "QUIC"
    with pytest.raises(cattrs.BaseValidationError):
        ir.loads(json.dumps(doc), ir.Listener)
