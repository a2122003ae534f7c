"""parse_object / parse_documents: every kind, CRD defaults, located errors, versions, YAML details."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from nantian.errors import ParseError
from nantian.resources import (
    AllowedRoutes,
    BackendTLSPolicy,
    ConfigMap,
    EndpointSlice,
    Gateway,
    GatewayClass,
    GRPCRoute,
    HTTPPathMatch,
    HTTPRoute,
    HTTPRouteMatch,
    ListenerSet,
    Namespace,
    ObjectRef,
    ReferenceGrant,
    RouteNamespaces,
    Secret,
    Service,
    TCPRoute,
    TLSRoute,
    UDPRoute,
    UnknownObject,
    YAMLSyntaxError,
    parse_documents,
    parse_object,
)

GW = "gateway.networking.k8s.io/v1"


def gateway_doc(**listener: Any) -> dict[str, Any]:
    return {
        "apiVersion": GW,
        "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "infra"},
        "spec": {
            "gatewayClassName": "nantian",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", **listener}],
        },
    }


def errors_of(doc: Any) -> list[str]:
    with pytest.raises(ParseError) as info:
        parse_object(doc)
    return info.value.errors


# --- kinds and defaults ------------------------------------------------------------------------
def test_gateway_listener_defaults_are_applied() -> None:
    gw = parse_object(
        gateway_doc(
            tls={"certificateRefs": [{"name": "cert"}], "options": {"a": "b"}},
            allowedRoutes={"kinds": [{"kind": "HTTPRoute"}]},
        )
    )
    assert isinstance(gw, Gateway)
    assert gw.ref == ObjectRef("Gateway", "infra", "gw")
    listener = gw.spec.listeners[0]
    assert listener.tls is not None
    assert listener.tls.mode == "Terminate"
    assert (listener.tls.certificate_refs[0].group, listener.tls.certificate_refs[0].kind) == ("", "Secret")
    assert listener.tls.certificate_refs[0].namespace is None
    assert listener.tls.options == {"a": "b"}
    assert listener.allowed_routes.namespaces.from_ == "Same"
    assert listener.allowed_routes.kinds[0].group == "gateway.networking.k8s.io"
    assert parse_object(gateway_doc()).spec.listeners[0].allowed_routes == AllowedRoutes(  # type: ignore[union-attr]
        namespaces=RouteNamespaces(from_="Same")
    )


def test_gateway_addresses_infrastructure_allowed_listeners_and_frontend_tls() -> None:
    doc = gateway_doc(allowedRoutes={"namespaces": {"from": "Selector", "selector": {"matchLabels": {"a": "b"}}}})
    doc["spec"].update(
        addresses=[{"value": "127.0.0.5"}, {"type": "Hostname"}],
        infrastructure={"labels": {"l": "v"}, "parametersRef": {"group": "g", "kind": "K", "name": "p"}},
        allowedListeners={"namespaces": {}},
        tls={
            "frontend": {
                "default": {"validation": {"caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]}},
                "perPort": [{"port": 443, "tls": {"validation": {"caCertificateRefs": [], "mode": "x"}}}],
            },
            "backend": {"clientCertificateRef": {"name": "client"}},
        },
    )
    gw = parse_object(doc)
    assert isinstance(gw, Gateway)
    assert [(a.type, a.value) for a in gw.spec.addresses] == [("IPAddress", "127.0.0.5"), ("Hostname", None)]
    assert gw.spec.infrastructure is not None and gw.spec.infrastructure.labels == {"l": "v"}
    assert gw.spec.allowed_listeners is not None and gw.spec.allowed_listeners.namespaces.from_ == "None"
    selector = gw.spec.listeners[0].allowed_routes.namespaces.selector
    assert selector is not None and selector.matches({"a": "b", "c": "d"}) and not selector.matches({})
    tls = gw.spec.tls
    assert tls is not None and tls.frontend is not None and tls.frontend.default.validation is not None
    assert tls.frontend.default.validation.mode == "AllowValidOnly"
    assert tls.frontend.default.validation.ca_certificate_refs[0].kind == "ConfigMap"
    assert tls.frontend.per_port[0].tls.validation is not None and tls.frontend.per_port[0].tls.validation.mode == "x"
    assert tls.backend is not None and tls.backend.client_certificate_ref is not None
    assert tls.backend.client_certificate_ref.kind == "Secret"


def test_gatewayclass_and_namespace_are_cluster_scoped() -> None:
    gc = parse_object(
        {
            "apiVersion": GW,
            "kind": "GatewayClass",
            "metadata": {"name": "c", "namespace": "x"},
            "spec": {"controllerName": "n/c"},
        }
    )
    assert isinstance(gc, GatewayClass) and gc.ref == ObjectRef("GatewayClass", "", "c")
    assert str(gc.ref) == "GatewayClass c"
    ns = parse_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "labels": {"a": "b"}}})
    assert isinstance(ns, Namespace) and ns.metadata.labels == {"a": "b"} and ns.metadata.namespace == ""


def test_httproute_defaults_every_filter_and_rule_fields() -> None:
    route = parse_object(
        {
            "apiVersion": GW,
            "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "app", "generation": 3, "creationTimestamp": "2024-01-02T03:04:05Z"},
            "spec": {
                "parentRefs": [{"name": "gw", "sectionName": "http", "port": 80}],
                "hostnames": ["example.com"],
                "rules": [
                    {
                        "name": "rule-1",
                        "matches": [
                            {"headers": [{"name": "h", "value": "v"}], "queryParams": [{"name": "q", "value": "1"}]},
                            {"path": {"type": "Exact", "value": "/x"}, "method": "GET"},
                            {"path": {"type": "RegularExpression"}},
                        ],
                        "filters": [
                            {
                                "type": "RequestHeaderModifier",
                                "requestHeaderModifier": {"set": [{"name": "a", "value": "b"}], "remove": ["c"]},
                            },
                            {
                                "type": "ResponseHeaderModifier",
                                "responseHeaderModifier": {"add": [{"name": "a", "value": "b"}]},
                            },
                            {
                                "type": "RequestRedirect",
                                "requestRedirect": {
                                    "scheme": "https",
                                    "path": {"type": "ReplaceFullPath", "replaceFullPath": "/y"},
                                },
                            },
                            {
                                "type": "URLRewrite",
                                "urlRewrite": {
                                    "hostname": "h",
                                    "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/p"},
                                },
                            },
                            {
                                "type": "RequestMirror",
                                "requestMirror": {"backendRef": {"name": "m", "port": 8080}, "percent": 50},
                            },
                            {
                                "type": "RequestMirror",
                                "requestMirror": {"backendRef": {"name": "m"}, "fraction": {"numerator": 1}},
                            },
                            {"type": "CORS", "cors": {"allowOrigins": ["*"], "allowCredentials": True}},
                            {"type": "ExtensionRef", "extensionRef": {"group": "g", "kind": "K", "name": "n"}},
                        ],
                        "backendRefs": [
                            {
                                "name": "svc",
                                "port": 8080,
                                "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {}}],
                            },
                            {"name": "svc2", "namespace": "other", "port": 8080, "weight": 0},
                        ],
                        "timeouts": {"request": "10s", "backendRequest": "1s"},
                        "retry": {"codes": [500, 502], "attempts": 3, "backoff": "100ms"},
                        "sessionPersistence": {"sessionName": "s", "cookieConfig": {}},
                    },
                    {"backendRefs": [{"name": "svc", "port": 8080}]},
                    {"matches": []},
                ],
            },
        }
    )
    assert isinstance(route, HTTPRoute)
    assert route.metadata.generation == 3 and route.metadata.creation_timestamp == "2024-01-02T03:04:05Z"
    parent = route.spec.parent_refs[0]
    assert (parent.group, parent.kind, parent.namespace, parent.section_name, parent.port) == (
        "gateway.networking.k8s.io",
        "Gateway",
        None,
        "http",
        80,
    )
    rule, second, third = route.spec.rules
    assert rule.name == "rule-1"
    m0, m1, m2 = rule.matches
    assert m0.path == HTTPPathMatch(type="PathPrefix", value="/")
    assert m0.headers[0].type == "Exact" and m0.query_params[0].type == "Exact"
    assert (m1.path.type, m1.path.value, m1.method) == ("Exact", "/x", "GET")
    assert (m2.path.type, m2.path.value) == ("RegularExpression", "/")
    f = rule.filters
    assert f[0].request_header_modifier is not None and f[0].request_header_modifier.set[0].name == "a"
    assert f[0].request_header_modifier.remove == ("c",)
    assert f[1].response_header_modifier is not None and f[1].response_header_modifier.add[0].value == "b"
    assert f[2].request_redirect is not None and f[2].request_redirect.status_code == 302
    assert f[2].request_redirect.path is not None and f[2].request_redirect.path.replace_full_path == "/y"
    assert f[3].url_rewrite is not None and f[3].url_rewrite.path is not None
    assert f[3].url_rewrite.path.replace_prefix_match == "/p"
    assert f[4].request_mirror is not None and f[4].request_mirror.percent == 50
    assert (f[4].request_mirror.backend_ref.group, f[4].request_mirror.backend_ref.kind) == ("", "Service")
    assert f[5].request_mirror is not None and f[5].request_mirror.fraction is not None
    assert f[5].request_mirror.fraction.denominator == 100
    assert f[6].cors is not None and f[6].cors.max_age == 5 and f[6].cors.allow_credentials is True
    assert f[7].extension_ref is not None and f[7].extension_ref.name == "n"
    b0, b1 = rule.backend_refs
    assert (b0.group, b0.kind, b0.weight, b0.namespace, b0.port) == ("", "Service", 1, None, 8080)
    assert b0.filters[0].type == "RequestHeaderModifier"
    assert (b1.namespace, b1.weight) == ("other", 0)
    assert rule.timeouts is not None and (rule.timeouts.request, rule.timeouts.backend_request) == ("10s", "1s")
    assert rule.retry is not None and rule.retry.codes == (500, 502) and rule.retry.attempts == 3
    assert rule.session_persistence is not None and rule.session_persistence.type == "Cookie"
    assert rule.session_persistence.cookie_config is not None
    assert rule.session_persistence.cookie_config.lifetime_type == "Session"
    assert second.matches == (HTTPRouteMatch(),)
    assert third.matches == ()


def test_httproute_without_rules_gets_the_default_rule() -> None:
    route = parse_object(
        {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "a"}, "spec": {}}
    )
    assert isinstance(route, HTTPRoute)
    assert len(route.spec.rules) == 1 and route.spec.rules[0].matches == (HTTPRouteMatch(),)
    assert route.spec.rules[0].backend_refs == ()


def test_grpcroute() -> None:
    route = parse_object(
        {
            "apiVersion": GW,
            "kind": "GRPCRoute",
            "metadata": {"name": "g", "namespace": "a"},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "rules": [
                    {
                        "name": "r",
                        "matches": [
                            {"method": {"service": "s", "method": "M"}, "headers": [{"name": "x", "value": "y"}]}
                        ],
                        "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "m"}}}],
                        "backendRefs": [{"name": "svc", "port": 50051, "weight": 2}],
                    }
                ],
            },
        }
    )
    assert isinstance(route, GRPCRoute)
    match = route.spec.rules[0].matches[0]
    assert match.method is not None and (match.method.type, match.method.service, match.method.method) == (
        "Exact",
        "s",
        "M",
    )
    assert match.headers[0].type == "Exact"
    assert route.spec.rules[0].backend_refs[0].weight == 2
    assert route.spec.rules[0].filters[0].request_mirror is not None


@pytest.mark.parametrize(("kind", "cls"), [("TCPRoute", TCPRoute), ("UDPRoute", UDPRoute)])
@pytest.mark.parametrize("version", ["v1", "v1alpha2"])
def test_stream_routes(kind: str, cls: type[Any], version: str) -> None:
    route = parse_object(
        {
            "apiVersion": f"gateway.networking.k8s.io/{version}",
            "kind": kind,
            "metadata": {"name": "t", "namespace": "a"},
            "spec": {
                "parentRefs": [{"name": "gw", "sectionName": "s"}],
                "rules": [{"backendRefs": [{"name": "b", "port": 1}]}],
            },
        }
    )
    assert isinstance(route, cls)
    assert route.spec.rules[0].backend_refs[0].weight == 1


def test_tlsroute_requires_hostnames_and_rules() -> None:
    doc: dict[str, Any] = {
        "apiVersion": GW,
        "kind": "TLSRoute",
        "metadata": {"name": "t", "namespace": "a"},
        "spec": {},
    }
    assert sorted(errors_of(doc)) == ["required field missing @ spec.hostnames", "required field missing @ spec.rules"]
    doc["spec"] = {"hostnames": ["a.example"], "rules": [{"backendRefs": [{"name": "b", "port": 443}]}]}
    route = parse_object(doc)
    assert isinstance(route, TLSRoute) and route.spec.hostnames == ("a.example",)


def test_referencegrant_from_keyword() -> None:
    grant = parse_object(
        {
            "apiVersion": "gateway.networking.k8s.io/v1beta1",
            "kind": "ReferenceGrant",
            "metadata": {"name": "g", "namespace": "b"},
            "spec": {
                "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "a"}],
                "to": [{"group": "", "kind": "Service"}],
            },
        }
    )
    assert isinstance(grant, ReferenceGrant)
    assert grant.spec.from_[0].namespace == "a" and grant.spec.to[0].name is None


def test_backendtlspolicy_and_listenerset() -> None:
    policy = parse_object(
        {
            "apiVersion": GW,
            "kind": "BackendTLSPolicy",
            "metadata": {"name": "p", "namespace": "a"},
            "spec": {
                "targetRefs": [{"group": "", "kind": "Service", "name": "s", "sectionName": "https"}],
                "validation": {
                    "hostname": "abc.example.com",
                    "wellKnownCACertificates": "System",
                    "subjectAltNames": [{"type": "URI", "uri": "spiffe://x"}],
                },
            },
        }
    )
    assert isinstance(policy, BackendTLSPolicy)
    assert policy.spec.validation.well_known_ca_certificates == "System"
    assert policy.spec.validation.subject_alt_names[0].uri == "spiffe://x"
    ls = parse_object(
        {
            "apiVersion": GW,
            "kind": "ListenerSet",
            "metadata": {"name": "l", "namespace": "a"},
            "spec": {"parentRef": {"name": "gw"}, "listeners": [{"name": "x", "port": 8080, "protocol": "HTTP"}]},
        }
    )
    assert isinstance(ls, ListenerSet)
    assert (ls.spec.parent_ref.kind, ls.spec.parent_ref.group) == ("Gateway", "gateway.networking.k8s.io")
    assert ls.spec.listeners[0].allowed_routes.namespaces.from_ == "Same"


def test_core_kinds() -> None:
    svc = parse_object(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s", "namespace": "a"},
            "spec": {
                "type": "ExternalName",
                "externalName": "example.com",
                "clusterIP": "10.0.0.1",
                "ports": [
                    {"name": "http", "port": 80, "targetPort": "web", "appProtocol": "kubernetes.io/h2c"},
                    {"port": 81, "targetPort": 8081},
                ],
            },
        }
    )
    assert isinstance(svc, Service)
    assert (svc.spec.type, svc.spec.external_name, svc.spec.cluster_ip) == ("ExternalName", "example.com", "10.0.0.1")
    assert [(p.port, p.target_port, p.protocol, p.app_protocol) for p in svc.spec.ports] == [
        (80, "web", "TCP", "kubernetes.io/h2c"),
        (81, 8081, "TCP", None),
    ]
    eps = parse_object(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "s-1", "namespace": "a", "labels": {"kubernetes.io/service-name": "s"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}, {"addresses": ["127.0.0.2"]}],
            "ports": [{"name": "http", "port": 8080}],
        }
    )
    assert isinstance(eps, EndpointSlice)
    assert eps.address_type == "IPv4" and eps.endpoints[0].conditions.ready is True
    assert eps.endpoints[1].conditions.ready is None and eps.ports[0].protocol == "TCP"
    secret = parse_object(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": "a"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(b"CERT").decode(), "tls.key": base64.b64encode(b"old").decode()},
            "stringData": {"tls.key": "KEY"},
        }
    )
    assert isinstance(secret, Secret)
    assert secret.type == "kubernetes.io/tls" and secret.data == {"tls.crt": b"CERT", "tls.key": b"KEY"}
    cm = parse_object(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "a"},
            "data": {"ca.crt": "PEM"},
        }
    )
    assert isinstance(cm, ConfigMap) and cm.data == {"ca.crt": "PEM"}


def test_objects_are_hashable_and_compare_by_value() -> None:
    a, b = parse_object(gateway_doc()), parse_object(gateway_doc())
    assert a == b and hash(a) == hash(b) and a is not b
    assert len({a, b}) == 1


# --- metadata ----------------------------------------------------------------------------------
def test_namespaced_object_without_namespace_is_in_default() -> None:
    svc = parse_object({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}})
    assert svc.ref == ObjectRef("Service", "default", "s")


def test_nulls_are_dropped_so_defaults_apply() -> None:
    doc = gateway_doc(hostname=None, allowedRoutes=None)
    doc["metadata"]["labels"] = None
    gw = parse_object(doc)
    assert isinstance(gw, Gateway)
    assert gw.spec.listeners[0].hostname is None and gw.spec.listeners[0].allowed_routes == AllowedRoutes()


# --- unknown kinds and versions ----------------------------------------------------------------
def test_unknown_kind_and_unserved_version_are_kept_raw() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "a"},
        "spec": {"x": 1},
    }
    obj = parse_object(deployment)
    assert isinstance(obj, UnknownObject)
    assert obj.ref == ObjectRef("Deployment", "a", "d") and obj.body == deployment and obj.api_version == "apps/v1"
    old = parse_object({**gateway_doc(), "apiVersion": "gateway.networking.k8s.io/v1alpha1"})
    assert isinstance(old, UnknownObject) and old.kind == "Gateway"
    other_group = parse_object({**gateway_doc(), "apiVersion": "example.com/v1"})
    assert isinstance(other_group, UnknownObject)


@pytest.mark.parametrize(
    ("kind", "version"),
    [
        ("Gateway", "v1beta1"),
        ("HTTPRoute", "v1beta1"),
        ("GatewayClass", "v1beta1"),
        ("ReferenceGrant", "v1beta1"),
        ("TLSRoute", "v1alpha2"),
        ("TLSRoute", "v1alpha3"),
        ("BackendTLSPolicy", "v1alpha3"),
    ],
)
def test_older_versions_parse_typed(kind: str, version: str) -> None:
    specs: dict[str, dict[str, Any]] = {
        "Gateway": gateway_doc()["spec"],
        "HTTPRoute": {},
        "GatewayClass": {"controllerName": "c"},
        "ReferenceGrant": {"from": [], "to": []},
        "TLSRoute": {"hostnames": [], "rules": []},
        "BackendTLSPolicy": {"targetRefs": [], "validation": {"hostname": "h"}},
    }
    doc = {
        "apiVersion": f"gateway.networking.k8s.io/{version}",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "a"},
        "spec": specs[kind],
    }
    assert not isinstance(parse_object(doc), UnknownObject)


# --- errors ------------------------------------------------------------------------------------
def test_wrong_type_is_located() -> None:
    errors = errors_of(gateway_doc(port="abc"))
    assert errors == ["expected int, got str @ spec.listeners[0].port"]


def test_every_problem_is_reported_with_its_path() -> None:
    doc = gateway_doc(port=True, name=5)
    doc["spec"]["listeners"].append("not an object")
    del doc["spec"]["gatewayClassName"]
    doc["metadata"]["labels"] = ["a"]
    assert sorted(errors_of(doc)) == sorted(
        [
            "expected int, got bool @ spec.listeners[0].port",
            "expected string, got int @ spec.listeners[0].name",
            "expected object, got str @ spec.listeners[1]",
            "required field missing @ spec.gatewayClassName",
            "expected object, got list @ metadata.labels",
        ]
    )


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"kind": "Gateway", "metadata": {"name": "x"}}, "expected non-empty string @ apiVersion"),
        ({"apiVersion": "v1", "metadata": {"name": "x"}}, "expected non-empty string @ kind"),
        ({"apiVersion": "apps/v1", "kind": "Deployment"}, "required field missing @ metadata"),
        ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}}, "required field missing @ metadata.name"),
        ({"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "g"}}, "required field missing @ spec"),
        (
            {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": "g"}, "spec": {"hostnames": "a"}},
            "expected list, got str @ spec.hostnames",
        ),
        (
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "!!"}},
            "expected base64 string, got invalid base64 @ data[k]",
        ),
        (
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "s"},
                "spec": {"ports": [{"port": 1, "targetPort": 1.5}]},
            },
            "expected int, got float @ spec.ports[0].targetPort",
        ),
    ],
)
def test_bad_documents_raise_parse_error_only(doc: dict[str, Any], expected: str) -> None:
    assert errors_of(doc) == [expected]


def test_parse_error_names_the_object() -> None:
    with pytest.raises(ParseError) as info:
        parse_object(gateway_doc(port="x"))
    assert info.value.ref == "Gateway infra/gw" and info.value.reason == "Invalid"
    assert "spec.listeners[0].port" in str(info.value)


def test_non_mapping_document() -> None:
    with pytest.raises(ParseError):
        parse_object(["a"])  # type: ignore[arg-type]


# --- documents ---------------------------------------------------------------------------------
def test_parse_documents_multi_document_with_lines() -> None:
    text = (
        "# comment\n"
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"
        "---\n"
        "---\n"
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports: [{port: abc}]\n"
        "---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, creationTimestamp: 2024-01-01T00:00:00Z}\n"
    )
    objects, errors = parse_documents(text, "dir/f.yaml")
    assert [obj.ref for obj, _ in objects] == [ObjectRef("Namespace", "", "a"), ObjectRef("Deployment", "", "d")]
    assert objects[1][0].metadata.creation_timestamp == "2024-01-01T00:00:00Z"
    assert objects[0][1] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}
    [error] = errors
    assert error.source == "dir/f.yaml:7" and error.errors == ["expected int, got str @ spec.ports[0].port"]


def test_yaml_syntax_error_is_located_and_keeps_earlier_documents() -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkey: [unclosed\nother: 1\n"
    objects, errors = parse_documents(text, "f.yaml")
    assert [obj.ref.name for obj, _ in objects] == ["a"]
    [error] = errors
    assert isinstance(error, YAMLSyntaxError) and error.source is not None
    assert error.source.startswith("f.yaml:") and int(error.source.split(":")[1]) >= 5


def test_list_documents_are_expanded_with_item_lines() -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n"
        "- apiVersion: v1\n  kind: Service\n  metadata: {name: s}\n  spec: {ports: [{port: x}]}\n"
    )
    objects, errors = parse_documents(text, "l.yaml")
    assert [obj.ref for obj, _ in objects] == [ObjectRef("Namespace", "", "a")]
    assert [e.source for e in errors] == ["l.yaml:7"]


def test_json_documents() -> None:
    doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}
    objects, errors = parse_documents(json.dumps(doc, indent="\t"), "x.json")
    assert [obj.ref.name for obj, _ in objects] == ["a"] and errors == []
    objects, errors = parse_documents('{"a": \n', "bad.json")
    assert objects == [] and isinstance(errors[0], YAMLSyntaxError) and errors[0].source == "bad.json:2"
    objects, errors = parse_documents(json.dumps(doc, indent="\t"), "<stdin>")  # kubectl get -o json | ...
    assert len(objects) == 1 and errors == []
    objects, errors = parse_documents("{apiVersion: v1, kind: Namespace, metadata: {name: y}}\n", "<stdin>")
    assert [obj.ref.name for obj, _ in objects] == ["y"] and errors == []  # YAML flow style, not JSON


def test_scalar_documents_are_errors_not_crashes() -> None:
    objects, errors = parse_documents("just a string\n---\n- a\n", "s.yaml")
    assert objects == [] and [e.source for e in errors] == ["s.yaml:1", "s.yaml:3"]
