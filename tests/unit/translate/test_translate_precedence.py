"""Match precedence across routes of one listener and hostname, and order independence of translate()."""

from __future__ import annotations

import random

from translate_harness import BASE, OPTIONS, docs_from_yaml, resource_set, translate_yaml

from nantian.ir import HttpMatch, PathMatch, PathMatchType
from nantian.translate import translate
from nantian.translate.precedence import match_key

GATEWAY = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: nantian
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
"""


def _route(name: str, ns: str, rules: str, ts: str | None = None, hostnames: str = "[]") -> str:
    stamp = f", creationTimestamp: '{ts}'" if ts else ""
    return f"""
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {ns}{stamp}}}
spec:
  parentRefs: [{{name: gw, namespace: infra}}]
  hostnames: {hostnames}
  rules: {rules}
"""


def _order(text: str) -> list[str]:
    t = translate_yaml(BASE + GATEWAY + text)
    (lst,) = t.snapshot.listeners
    (vh,) = lst.virtual_hosts
    return [r.name for r in vh.routes]


def test_path_kinds_and_lengths() -> None:
    key = match_key
    age = ("", "ns", "r")
    exact = key(HttpMatch(path=PathMatch(type=PathMatchType.EXACT, value="/a")), age, 0, 0)
    regex = key(HttpMatch(path=PathMatch(type=PathMatchType.REGEX, value="/a.*")), age, 0, 0)
    long_prefix = key(HttpMatch(path=PathMatch(value="/abc")), age, 0, 0)
    short_prefix = key(HttpMatch(path=PathMatch(value="/a")), age, 0, 0)
    method = key(HttpMatch(path=PathMatch(value="/a"), method="GET"), age, 0, 0)
    assert sorted([short_prefix, long_prefix, method, regex, exact]) == [
        exact,
        regex,
        long_prefix,
        method,
        short_prefix,
    ]


def test_across_routes_exact_then_longest_prefix_then_method_headers_query() -> None:
    text = _route(
        "a",
        "infra",
        """
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: svc, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /foo}, headers: [{name: X, value: "1"}]}]
    backendRefs: [{name: svc, port: 8080}]""",
    ) + _route(
        "b",
        "infra",
        """
  - matches:
    - {path: {type: Exact, value: /foo}}
    - {path: {type: PathPrefix, value: /foo}, method: GET}
    - {path: {type: PathPrefix, value: /foo}, queryParams: [{name: q, value: "1"}]}
    - {path: {type: PathPrefix, value: /foobar}}
    backendRefs: [{name: svc, port: 8080}]""",
    )
    assert _order(text) == [
        "HTTPRoute/infra/b/0/0",  # exact
        "HTTPRoute/infra/b/0/3",  # longest prefix
        "HTTPRoute/infra/b/0/1",  # method
        "HTTPRoute/infra/a/1/0",  # one header
        "HTTPRoute/infra/b/0/2",  # one query param
        "HTTPRoute/infra/a/0/0",  # /
    ]


def test_ties_go_to_oldest_then_namespace_name() -> None:
    rules = """
  - matches: [{path: {type: PathPrefix, value: /same}}]
    backendRefs: [{name: svc, port: 8080}]"""
    text = (
        _route("z-old", "infra", rules, ts="2024-01-01T00:00:00Z")
        + _route("a-new", "infra", rules, ts="2025-01-01T00:00:00Z")
        + _route("b", "apps", rules, ts="2025-01-01T00:00:00Z")
    )
    assert _order(text) == ["HTTPRoute/infra/z-old/0/0", "HTTPRoute/apps/b/0/0", "HTTPRoute/infra/a-new/0/0"]


def test_translation_ignores_input_order() -> None:
    rules = """
  - matches: [{path: {type: PathPrefix, value: /x}}]
    backendRefs: [{name: svc, port: 8080, weight: 2}, {name: missing, port: 1}]"""
    text = BASE + GATEWAY + "".join(_route(f"r{i}", "infra", rules, hostnames=f"[h{i % 3}.com]") for i in range(12))
    docs = docs_from_yaml(text)
    first = translate(resource_set(docs), OPTIONS)
    rnd = random.Random(7)
    for _ in range(3):
        shuffled = list(docs)
        rnd.shuffle(shuffled)
        again = translate(resource_set(shuffled), OPTIONS)
        assert again.snapshot == first.snapshot
        assert again.statuses == first.statuses
    assert first.snapshot.version
