"""Route attachment: sectionName/port, allowedRoutes namespaces (Same/All/Selector) and kinds, hostnames."""

from __future__ import annotations

import pytest
from translate_harness import BASE, cond, listener, parent, translate_yaml


def _gateway(allowed: str, hostname: str = "") -> str:
    host = f", hostname: '{hostname}'" if hostname else ""
    return f"""
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: infra}}
spec:
  gatewayClassName: nantian
  listeners:
  - {{name: http, port: 80, protocol: HTTP{host}, allowedRoutes: {allowed}}}
  - {{name: other, port: 8080, protocol: HTTP, allowedRoutes: {{namespaces: {{from: Same}}}}}}
"""


def _route(ns: str, parent_ref: str = "{name: gw, namespace: infra, sectionName: http}", hostnames: str = "[]") -> str:
    return f"""
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: {ns}}}
spec:
  parentRefs: [{parent_ref}]
  hostnames: {hostnames}
  rules:
  - backendRefs: [{{name: other, namespace: apps, port: 80}}]
"""


@pytest.mark.parametrize(
    ("allowed", "ns", "accepted"),
    [
        ("{namespaces: {from: Same}}", "infra", True),
        ("{namespaces: {from: Same}}", "apps", False),
        ("{namespaces: {from: All}}", "apps", True),
        ("{namespaces: {from: Selector, selector: {matchLabels: {team: apps}}}}", "apps", True),
        ("{namespaces: {from: Selector, selector: {matchLabels: {team: apps}}}}", "infra", False),
        (
            "{namespaces: {from: Selector, selector: {matchExpressions: [{key: env, operator: In, values: [prod]}]}}}",
            "apps",
            True,
        ),
        (
            "{namespaces: {from: Selector, selector: {matchExpressions: [{key: env, operator: DoesNotExist}]}}}",
            "apps",
            False,
        ),
        (
            "{namespaces: {from: Selector, selector: {matchExpressions: "
            "[{key: kubernetes.io/metadata.name, operator: NotIn, values: [infra]}]}}}",
            "apps",
            True,
        ),
        ("{namespaces: {from: All}, kinds: [{kind: GRPCRoute}]}", "apps", False),
    ],
)
def test_allowed_routes(allowed: str, ns: str, accepted: bool) -> None:
    t = translate_yaml(BASE + _gateway(allowed) + _route(ns))
    status, reason = cond(parent(t, "HTTPRoute", ns, "r"), "Accepted")
    assert (status, reason) == (("True", "Accepted") if accepted else ("False", "NotAllowedByListeners"))
    assert listener(t, "infra", "gw", "http")["attachedRoutes"] == (1 if accepted else 0)
    routes = [r.route for lst in t.snapshot.listeners for vh in lst.virtual_hosts for r in vh.routes]
    assert routes == ([f"HTTPRoute/{ns}/r"] if accepted else [])


@pytest.mark.parametrize(
    ("parent_ref", "reason"),
    [
        ("{name: gw, namespace: infra, sectionName: nope}", "NoMatchingParent"),
        ("{name: gw, namespace: infra, port: 81}", "NoMatchingParent"),
        ("{name: gw, namespace: infra, sectionName: http, port: 8080}", "NoMatchingParent"),
        ("{name: gw, namespace: infra, port: 80}", "Accepted"),
    ],
)
def test_section_name_and_port(parent_ref: str, reason: str) -> None:
    t = translate_yaml(BASE + _gateway("{namespaces: {from: All}}") + _route("apps", parent_ref))
    assert cond(parent(t, "HTTPRoute", "apps", "r"), "Accepted")[1] == reason


def test_whole_gateway_parent_attaches_to_every_admitting_listener() -> None:
    t = translate_yaml(BASE + _gateway("{namespaces: {from: All}}") + _route("infra", "{name: gw, namespace: infra}"))
    assert listener(t, "infra", "gw", "http")["attachedRoutes"] == 1
    assert listener(t, "infra", "gw", "other")["attachedRoutes"] == 1
    assert {lst.port for lst in t.snapshot.listeners if lst.virtual_hosts} == {80, 8080}


def test_hostname_intersection() -> None:
    gw = _gateway("{namespaces: {from: All}}", hostname="*.example.com")
    t = translate_yaml(BASE + gw + _route("apps", hostnames="[other.org]"))
    assert cond(parent(t, "HTTPRoute", "apps", "r"), "Accepted") == ("False", "NoMatchingListenerHostname")
    assert listener(t, "infra", "gw", "http")["attachedRoutes"] == 0
    t = translate_yaml(BASE + gw + _route("apps", hostnames="[a.example.com, other.org, '*.b.example.com']"))
    assert cond(parent(t, "HTTPRoute", "apps", "r"), "Accepted") == ("True", "Accepted")
    (lst,) = [x for x in t.snapshot.listeners if x.port == 80]
    assert sorted(vh.hostname for vh in lst.virtual_hosts) == ["*.b.example.com", "a.example.com"]
    assert {vh.section_hostname for vh in lst.virtual_hosts} == {"*.example.com"}


def test_parent_of_another_controller_gets_no_status() -> None:
    text = BASE + _route("apps", "{name: elsewhere, namespace: infra}")
    t = translate_yaml(
        text
        + """
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: theirs}
spec: {controllerName: example.com/other}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: elsewhere, namespace: infra}
spec:
  gatewayClassName: theirs
  listeners: [{name: http, port: 80, protocol: HTTP}]
"""
    )
    assert not any(ref.kind in ("HTTPRoute", "Gateway") for ref in t.statuses)
    assert {ref.kind for ref in t.statuses} == {"GatewayClass"}
    assert t.snapshot.listeners == ()
