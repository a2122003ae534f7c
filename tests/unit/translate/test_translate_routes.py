"""Route translation details: filters, unsupported values, gRPC paths, stream routes, BackendTLSPolicy, classes."""

from __future__ import annotations

import pytest
from translate_harness import BASE, OPTIONS, cond, docs_from_yaml, parent, resource_set, translate_yaml

from nantian.ir import (
    HttpRoute,
    PathMatch,
    PathMatchType,
    PathModifierType,
    Protocol,
    TlsMode,
)
from nantian.resources import GRPCMethodMatch, ObjectRef, parse_object
from nantian.testing import MaterialSpec, generated_objects
from nantian.translate import FEATURES, Translation, Translator, translate
from nantian.translate.filters import Problem
from nantian.translate.grpcroute import grpc_path

GATEWAY = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: nantian
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - {name: tcp, port: 9000, protocol: TCP}
  - {name: tls, port: 8443, protocol: TLS, hostname: '*.example.com', tls: {mode: Passthrough}}
"""


def _http(rules: str, name: str = "r") -> str:
    return f"""
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: infra}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  rules: {rules}
"""


def _routes(t: Translation) -> list[HttpRoute]:
    return [r for lst in t.snapshot.listeners for vh in lst.virtual_hosts for r in vh.routes]


def test_filters_become_ir() -> None:
    rules = """
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-A, value: a}], add: [{name: X-B, value: b}], remove: [X-C]}
    - {type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-R, value: r}]}}
    - {type: URLRewrite, urlRewrite: {hostname: h.com, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: svc, port: 8081}, percent: 25}}
    - {type: CORS, cors: {allowOrigins: ['https://a.com'], allowMethods: [GET], maxAge: 60}}
    backendRefs:
    - name: svc
      port: 8080
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Backend, value: v1}]}}]
    timeouts: {request: 10s, backendRequest: 2s}
    retry: {codes: [503], attempts: 3, backoff: 100ms}
  - matches: [{path: {type: Exact, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, port: 8443, statusCode: 301}}]
"""
    t = translate_yaml(BASE + GATEWAY + _http(rules))
    assert cond(parent(t, "HTTPRoute", "infra", "r"), "Accepted") == ("True", "Accepted")
    api, old = sorted(_routes(t), key=lambda r: r.name)
    assert api.request_headers is not None and [h.name for h in api.request_headers.set] == ["X-A"]
    assert api.request_headers.remove == ("X-C",)
    assert api.response_headers is not None
    assert api.rewrite is not None and api.rewrite.hostname == "h.com"
    assert api.rewrite.path is not None and api.rewrite.path.type == PathModifierType.PREFIX
    assert [(m.cluster, m.percent) for m in api.mirrors] == [("infra/svc:8081", 25.0)]
    assert api.cors is not None and api.cors.allow_origins == ("https://a.com",) and api.cors.max_age == 60
    (backend,) = api.backends
    assert backend.request_headers is not None and backend.request_headers.set[0].value == "v1"
    assert api.timeouts is not None and (api.timeouts.request, api.timeouts.backend_request) == (10.0, 2.0)
    assert api.retry is not None and (api.retry.codes, api.retry.attempts, api.retry.backoff) == ((503,), 3, 0.1)
    assert old.redirect is not None and (old.redirect.scheme, old.redirect.port, old.redirect.status_code) == (
        "https",
        8443,
        301,
    )
    assert old.direct_status is None and old.match.path == PathMatch(type=PathMatchType.EXACT, value="/old")
    assert {c.name for c in t.snapshot.clusters} == {"infra/svc:8080", "infra/svc:8081"}
    assert t.snapshot.problems() == []


@pytest.mark.parametrize(
    "rules",
    [
        "[{filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Nope, name: x}}],"
        " backendRefs: [{name: svc, port: 8080}]}]",
        "[{matches: [{path: {type: Exact, value: /x}}], filters: [{type: URLRewrite, urlRewrite:"
        " {path: {type: ReplacePrefixMatch, replacePrefixMatch: /y}}}], backendRefs: [{name: svc, port: 8080}]}]",
        "[{sessionPersistence: {sessionName: s}, backendRefs: [{name: svc, port: 8080}]}]",
        "[{timeouts: {request: soon}, backendRefs: [{name: svc, port: 8080}]}]",
        "[{matches: [{path: {type: RegularExpression, value: '/(unclosed'}}], backendRefs: [{name: svc, port: 8080}]}]",
        "[{matches: [{headers: [{type: RegularExpression, name: X, value: '['}]}],"
        " backendRefs: [{name: svc, port: 8080}]}]",
    ],
)
def test_problems_are_reported(rules: str) -> None:
    t = translate_yaml(BASE + GATEWAY + _http(rules))
    entry = parent(t, "HTTPRoute", "infra", "r")
    assert "False" in (cond(entry, "Accepted")[0], cond(entry, "ResolvedRefs")[0])


def test_unaccepted_route_is_not_served() -> None:
    rules = (
        "[{matches: [{path: {type: Exact, value: /x}}], filters: [{type: RequestRedirect, requestRedirect:"
        " {path: {type: ReplacePrefixMatch, replacePrefixMatch: /y}}}]}]"
    )
    t = translate_yaml(BASE + GATEWAY + _http(rules))
    assert cond(parent(t, "HTTPRoute", "infra", "r"), "Accepted") == ("False", "UnsupportedValue")
    assert _routes(t) == []


def test_extension_ref_filter_carries_the_target_spec() -> None:
    rules = (
        "[{filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: RateLimit, name: rl}}],"
        " backendRefs: [{name: svc, port: 8080}]}]"
    )
    target = """
---
apiVersion: example.com/v1
kind: RateLimit
metadata: {name: rl, namespace: infra}
spec: {rps: 5, burst: 10}
"""
    t = translate_yaml(BASE + GATEWAY + _http(rules) + target)
    (route,) = _routes(t)
    (plugin,) = route.plugin_filters
    assert plugin.name == "example.com/RateLimit/infra/rl"
    assert plugin.config == '{"burst":10,"rps":5}'


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (None, PathMatch(type=PathMatchType.PREFIX, value="/")),
        (GRPCMethodMatch(service="pkg.Svc", method="Do"), PathMatch(type=PathMatchType.EXACT, value="/pkg.Svc/Do")),
        (GRPCMethodMatch(service="pkg.Svc"), PathMatch(type=PathMatchType.PREFIX, value="/pkg.Svc")),
        (GRPCMethodMatch(method="Do"), PathMatch(type=PathMatchType.REGEX, value="/[^/]+/Do")),
        (
            GRPCMethodMatch(type="RegularExpression", service="pkg\\..*", method="D.*"),
            PathMatch(type=PathMatchType.REGEX, value="/pkg\\..*/D.*"),
        ),
    ],
)
def test_grpc_paths(method: GRPCMethodMatch | None, expected: PathMatch) -> None:
    assert grpc_path(method) == expected


def test_grpc_bad_regex_is_a_problem() -> None:
    assert isinstance(grpc_path(GRPCMethodMatch(type="RegularExpression", service="(")), Problem)


def test_grpc_route_is_post_and_grpc() -> None:
    route = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{method: {service: pkg.Svc, method: Do}, headers: [{name: X-Tenant, value: a}]}]
    backendRefs: [{name: svc, port: 8081}]
"""
    t = translate_yaml(BASE + GATEWAY + route)
    (r,) = _routes(t)
    assert r.grpc and r.match.method == "POST" and r.match.path.value == "/pkg.Svc/Do"
    assert [h.name for h in r.match.headers] == ["x-tenant"]
    assert cond(parent(t, "GRPCRoute", "infra", "g"), "Accepted") == ("True", "Accepted")


def test_stream_routes() -> None:
    routes = """
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: t, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: tcp}]
  rules: [{backendRefs: [{name: svc, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: s, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  hostnames: [a.example.com, other.org]
  rules: [{backendRefs: [{name: svc, port: 8080}]}]
"""
    t = translate_yaml(BASE + GATEWAY + routes)
    by_port = {lst.port: lst for lst in t.snapshot.listeners}
    (tcp,) = by_port[9000].stream_routes
    assert (tcp.route, tcp.section, tcp.backends[0].cluster) == (
        "TCPRoute/infra/t",
        "infra/gw/tcp",
        "infra/svc:8080/tcp",
    )
    tls = by_port[8443]
    assert (tls.protocol, tls.tls_mode) == (Protocol.TLS, TlsMode.PASSTHROUGH)
    (sni,) = tls.stream_routes
    assert sni.hostnames == ("a.example.com",)
    assert cond(parent(t, "TLSRoute", "infra", "s"), "Accepted") == ("True", "Accepted")
    assert t.snapshot.problems() == []


def test_backend_tls_policy_and_its_status() -> None:
    policy = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: p, namespace: infra}
spec:
  targetRefs: [{group: '', kind: Service, name: svc, sectionName: http}]
  validation:
    caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]
    hostname: backend.example.com
    subjectAltNames: [{type: URI, uri: 'spiffe://x/y'}]
"""
    docs = [
        *docs_from_yaml(BASE + GATEWAY + _http("[{backendRefs: [{name: svc, port: 8080}]}]") + policy),
        *generated_objects([MaterialSpec(kind="ConfigMap", namespace="infra", name="ca", type="ca")]),
    ]
    t = translate(resource_set(docs), OPTIONS)
    (cluster,) = t.snapshot.clusters
    assert cluster.tls is not None
    assert (cluster.tls.sni, cluster.tls.ca_secrets, cluster.tls.subject_alt_names) == (
        "backend.example.com",
        ("infra/ca",),
        ("spiffe://x/y",),
    )
    (ancestor,) = t.statuses[ObjectRef("BackendTLSPolicy", "infra", "p")]["ancestors"]
    assert ancestor["ancestorRef"]["name"] == "gw"
    assert cond(ancestor, "Accepted") == ("True", "Accepted")
    assert t.snapshot.problems() == []
    # Without the CA the policy is refused and the backend is not reached in plaintext: its share answers 500.
    t = translate_yaml(BASE + GATEWAY + _http("[{backendRefs: [{name: svc, port: 8080}]}]") + policy)
    (ancestor,) = t.statuses[ObjectRef("BackendTLSPolicy", "infra", "p")]["ancestors"]
    assert cond(ancestor, "Accepted") == ("False", "NoValidCACertificate")
    (route,) = _routes(t)
    assert route.direct_status == 500


def test_gateway_class_status() -> None:
    t = translate_yaml("")
    status = t.statuses[ObjectRef("GatewayClass", "", "nantian")]
    assert cond(status, "Accepted") == ("True", "Accepted")
    assert [f["name"] for f in status["supportedFeatures"]] == sorted(FEATURES)
    assert "HTTPRoute" in FEATURES and "GatewayInfrastructurePropagation" not in FEATURES


def test_gateways_of_a_class_with_missing_parameters_are_not_accepted() -> None:
    text = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: broken}
spec:
  controllerName: nantian.io/gateway-controller
  parametersRef: {group: example.com, kind: Config, name: missing}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: broken
  listeners: [{name: http, port: 80, protocol: HTTP}]
"""
    t = translate_yaml(text)
    assert cond(t.statuses[ObjectRef("GatewayClass", "", "broken")], "Accepted") == ("False", "InvalidParameters")
    gw = t.statuses[ObjectRef("Gateway", "infra", "gw")]
    assert cond(gw, "Accepted") == ("False", "Invalid")
    assert cond(gw, "Programmed")[0] == "False"
    assert t.snapshot.listeners == ()


_TWO_HTTP_SECTIONS = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: nantian
  listeners:
  - {name: a, port: 80, protocol: HTTP}
  - {name: b, port: 80, protocol: HTTP, hostname: b.example.com}
  - {name: tcp, port: 9000, protocol: TCP}
"""

# One Gateway named four ways: whole, by section, by port, and by section with the route's namespace spelled out
# (the same parent as the second). The API server's CEL rules refuse some of these; a file source does not.
_OVERLAPPING_REFS = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: infra}
spec:
  parentRefs:
  - {name: gw}
  - {name: gw, sectionName: a}
  - {name: gw, port: 80}
  - {name: gw, namespace: infra, sectionName: a}
  - {name: gw, sectionName: a}
  hostnames: [b.example.com, c.example.com]
  rules: [{backendRefs: [{name: svc, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: t, namespace: infra}
spec:
  parentRefs: [{name: gw}, {name: gw, sectionName: tcp}, {name: gw, port: 9000}]
  rules: [{backendRefs: [{name: svc, port: 8080}]}]
"""


def _served(t: Translation) -> list[tuple[str, str, list[str]]]:
    return [
        (vh.section, vh.hostname, [r.name for r in vh.routes])
        for lst in t.snapshot.listeners
        for vh in lst.virtual_hosts
    ]


def test_parent_refs_selecting_one_listener_serve_the_route_there_once() -> None:
    t = translate_yaml(BASE + _TWO_HTTP_SECTIONS + _OVERLAPPING_REFS)
    assert _served(t) == [
        ("infra/gw/a", "b.example.com", ["HTTPRoute/infra/r/0/0"]),
        ("infra/gw/a", "c.example.com", ["HTTPRoute/infra/r/0/0"]),
        ("infra/gw/b", "b.example.com", ["HTTPRoute/infra/r/0/0"]),
    ]
    (tcp,) = [lst for lst in t.snapshot.listeners if lst.port == 9000]
    assert [(s.name, s.section) for s in tcp.stream_routes] == [("TCPRoute/infra/t@infra/gw/tcp", "infra/gw/tcp")]
    # One status entry per distinct parentRef as written (the repeated and the namespace-spelled-out ones merge).
    gw = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "infra", "name": "gw"}
    http = t.statuses[ObjectRef("HTTPRoute", "infra", "r")]["parents"]
    assert [e["parentRef"] for e in http] == [gw, {**gw, "sectionName": "a"}, {**gw, "port": 80}]
    assert all(cond(e, "Accepted") == ("True", "Accepted") for e in http)
    stream = t.statuses[ObjectRef("TCPRoute", "infra", "t")]["parents"]
    assert [e["parentRef"] for e in stream] == [gw, {**gw, "sectionName": "tcp"}, {**gw, "port": 9000}]
    # attachedRoutes counts each route once per listener.
    assert [
        (lst["name"], lst["attachedRoutes"]) for lst in t.statuses[ObjectRef("Gateway", "infra", "gw")]["listeners"]
    ] == [
        ("a", 1),
        ("b", 1),
        ("tcp", 1),
    ]
    assert t.snapshot.problems() == []


def test_overlapping_parent_refs_translate_incrementally_to_the_same_bytes() -> None:
    docs = docs_from_yaml(BASE + _TWO_HTTP_SECTIONS + _OVERLAPPING_REFS)
    single = [
        {**d, "spec": {**d["spec"], "parentRefs": [{"name": "gw", "sectionName": "a"}]}}
        if d["kind"] in ("HTTPRoute", "TCPRoute")
        else d
        for d in docs
    ]
    translator = Translator(OPTIONS)
    for step in (single, docs, single, docs):
        rs = resource_set(step)
        incremental, scratch = translator.translate(rs), translate(rs, OPTIONS)
        assert incremental.snapshot.version == scratch.snapshot.version
        assert incremental.snapshot == scratch.snapshot
        assert dict(incremental.statuses) == dict(scratch.statuses)
    # Replacing only the route object (the Gateway state stays the same object) goes through the route memo.
    rs = resource_set(single)
    translator.translate(rs)
    for d in docs:
        if d["kind"] == "HTTPRoute":
            rs = rs.with_object(parse_object(d))
    incremental = translator.translate(rs)
    assert incremental.snapshot.version == translate(rs, OPTIONS).snapshot.version
    assert _served(incremental) == _served(translate(rs, OPTIONS))
