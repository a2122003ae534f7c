"""Backend resolution: Services, EndpointSlices (ready endpoints, ports by name), app protocols, reasons."""

from __future__ import annotations

import pytest
from translate_harness import BASE, cond, parent, translate_yaml

from nantian.ir import AppProtocol, Endpoint, HttpRoute
from nantian.translate import Translation

GATEWAY = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: nantian
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - {name: udp, port: 5300, protocol: UDP}
"""


def _route(backend: str, kind: str = "HTTPRoute", version: str = "v1") -> str:
    return f"""
---
apiVersion: gateway.networking.k8s.io/{version}
kind: {kind}
metadata: {{name: r, namespace: infra}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - backendRefs: [{backend}]
"""


def test_endpoints_are_the_ready_ones_on_the_slice_port_of_the_same_name() -> None:
    t = translate_yaml(BASE + GATEWAY + _route("{name: svc, port: 8080}"))
    (cluster,) = t.snapshot.clusters
    assert cluster.name == "infra/svc:8080"
    assert cluster.protocol == AppProtocol.HTTP1
    assert cluster.endpoints == (Endpoint(address="10.0.0.1", port=13000), Endpoint(address="10.0.0.3", port=13000))
    assert cond(parent(t, "HTTPRoute", "infra", "r"), "ResolvedRefs") == ("True", "ResolvedRefs")


@pytest.mark.parametrize(("port", "protocol"), [(8081, AppProtocol.H2C), (8082, AppProtocol.WEBSOCKET)])
def test_app_protocol(port: int, protocol: AppProtocol) -> None:
    t = translate_yaml(BASE + GATEWAY + _route(f"{{name: svc, port: {port}}}"))
    (cluster,) = t.snapshot.clusters
    assert cluster.protocol == protocol
    assert {e.port for e in cluster.endpoints} == {port + 13000 - 8080}


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        ("{name: svc, port: 8080, kind: Pod}", "InvalidKind"),
        ("{name: svc, port: 8080, group: example.com, kind: Service}", "InvalidKind"),
        ("{name: missing, port: 8080}", "BackendNotFound"),
        ("{name: svc, port: 9999}", "BackendNotFound"),
        ("{name: svc, port: 53}", "UnsupportedProtocol"),
    ],
)
def test_unusable_backend_reasons_and_500(backend: str, reason: str) -> None:
    t = translate_yaml(BASE + GATEWAY + _route(backend))
    assert cond(parent(t, "HTTPRoute", "infra", "r"), "ResolvedRefs") == ("False", reason)
    assert cond(parent(t, "HTTPRoute", "infra", "r"), "Accepted") == ("True", "Accepted")
    route = _only_route(t)
    assert route.direct_status == 500
    assert [b.cluster for b in route.backends] == [None]


def _only_route(t: Translation) -> HttpRoute:
    (lst,) = [x for x in t.snapshot.listeners if x.port == 80]
    (vh,) = lst.virtual_hosts
    (route,) = vh.routes
    return route


def test_zero_weights_answer_500_and_no_backend_refs_answer_500() -> None:
    t = translate_yaml(BASE + GATEWAY + _route("{name: svc, port: 8080, weight: 0}"))
    assert _only_route(t).direct_status == 500
    t = translate_yaml(BASE + GATEWAY + _route("{name: svc, port: 8080, weight: 5}"))
    assert _only_route(t).direct_status is None


def test_udp_route_uses_the_udp_port() -> None:
    t = translate_yaml(BASE + GATEWAY + _route("{name: svc, port: 53}", kind="UDPRoute", version="v1alpha2"))
    assert cond(parent(t, "UDPRoute", "infra", "r"), "ResolvedRefs") == ("True", "ResolvedRefs")
    (lst,) = [x for x in t.snapshot.listeners if x.port == 5300]
    (stream,) = lst.stream_routes
    (cluster,) = t.snapshot.clusters
    assert stream.backends[0].cluster == cluster.name
    assert cluster.protocol == AppProtocol.UDP
    assert {e.port for e in cluster.endpoints} == {15353}
    t = translate_yaml(BASE + GATEWAY + _route("{name: svc, port: 8080}", kind="UDPRoute", version="v1alpha2"))
    assert cond(parent(t, "UDPRoute", "infra", "r"), "ResolvedRefs") == ("False", "UnsupportedProtocol")
