"""ReferenceGrant for cross-namespace backendRefs and certificateRefs."""

from __future__ import annotations

from translate_harness import BASE, cond, listener, parent, translate_yaml

from nantian.resources import ReferenceGrant, parse_object
from nantian.translate.referencegrant import GrantIndex

ROUTE = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: nantian
  listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: other, namespace: apps, port: 80, weight: 3}, {name: svc, port: 8080}]
"""


def _grant(to_name: str | None = None, from_kind: str = "HTTPRoute", from_ns: str = "infra") -> str:
    name = f", name: {to_name}" if to_name else ""
    return f"""
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: g, namespace: apps}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: {from_kind}, namespace: {from_ns}}}]
  to: [{{group: '', kind: Service{name}}}]
"""


def _backends(text: str) -> list[tuple[str | None, int]]:
    (lst,) = translate_yaml(text).snapshot.listeners
    (vh,) = lst.virtual_hosts
    (route,) = vh.routes
    return [(b.cluster, b.weight) for b in route.backends]


def test_cross_namespace_backend_needs_a_grant() -> None:
    t = translate_yaml(BASE + ROUTE)
    assert cond(parent(t, "HTTPRoute", "infra", "r"), "ResolvedRefs") == ("False", "RefNotPermitted")
    assert cond(parent(t, "HTTPRoute", "infra", "r"), "Accepted") == ("True", "Accepted")
    # The refused backend keeps its share, which answers 500; the other still serves.
    assert _backends(BASE + ROUTE) == [(None, 3), ("infra/svc:8080", 1)]


def test_grant_permits() -> None:
    for grant in (_grant(), _grant("other")):
        t = translate_yaml(BASE + ROUTE + grant)
        assert cond(parent(t, "HTTPRoute", "infra", "r"), "ResolvedRefs") == ("True", "ResolvedRefs")
        assert _backends(BASE + ROUTE + grant) == [("apps/other:80", 3), ("infra/svc:8080", 1)]


def test_grant_for_something_else_does_not_permit() -> None:
    for grant in (_grant("not-other"), _grant(from_kind="GRPCRoute"), _grant(from_ns="apps")):
        t = translate_yaml(BASE + ROUTE + grant)
        assert cond(parent(t, "HTTPRoute", "infra", "r"), "ResolvedRefs") == ("False", "RefNotPermitted")


def test_grant_index() -> None:
    grant = parse_object(
        {
            "apiVersion": "gateway.networking.k8s.io/v1beta1",
            "kind": "ReferenceGrant",
            "metadata": {"name": "g", "namespace": "to"},
            "spec": {
                "from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "from"}],
                "to": [{"group": "", "kind": "Secret", "name": "s"}],
            },
        }
    )
    assert isinstance(grant, ReferenceGrant)
    idx = GrantIndex([grant])
    common = {"from_group": "gateway.networking.k8s.io", "from_kind": "Gateway", "to_group": "", "to_kind": "Secret"}
    assert idx.permits(from_ns="from", to_ns="to", to_name="s", **common)
    assert not idx.permits(from_ns="from", to_ns="to", to_name="t", **common)
    assert not idx.permits(from_ns="elsewhere", to_ns="to", to_name="s", **common)
    assert idx.permits(from_ns="same", to_ns="same", to_name="x", **common)


def test_cross_namespace_certificate_needs_a_grant() -> None:
    gw = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tls, namespace: infra}
spec:
  gatewayClassName: nantian
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    tls: {certificateRefs: [{name: cert, namespace: apps}]}
"""
    t = translate_yaml(BASE + gw)
    assert cond(listener(t, "infra", "tls", "https"), "ResolvedRefs") == ("False", "RefNotPermitted")
    assert cond(listener(t, "infra", "tls", "https"), "Programmed")[0] == "False"
    assert t.snapshot.listeners == ()
