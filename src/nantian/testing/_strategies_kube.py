"""Hypothesis strategies for Gateway API resource sets as Kubernetes-shaped documents (plain dicts).

Names come from small fixed pools (:data:`NAMESPACES`, :data:`GATEWAYS`, :data:`SERVICES`, ...) so references
between generated objects often resolve and sometimes do not: missing Services, Gateways and Secrets,
cross-namespace references with and without a ReferenceGrant, listeners that do not admit a route.
Re-exported by :mod:`nantian.testing.strategies`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import attrs
from hypothesis import strategies as st

from nantian.testing._strategies_pem import CERT_HOSTS, tls_secret_data

__all__ = [
    "GATEWAYS",
    "GATEWAY_API",
    "HOSTNAMES",
    "NAMESPACES",
    "OTHER_CONTROLLER",
    "OUR_CONTROLLER",
    "ROUTES",
    "ROUTE_KINDS",
    "SECRETS",
    "SERVICES",
    "SERVICE_PORTS",
    "ExistingObjects",
    "documents",
    "gateway_class_documents",
    "gateway_documents",
    "grpc_route_documents",
    "http_route_documents",
    "json_values",
    "malformed_documents",
    "namespace_documents",
    "reference_grant_documents",
    "secret_documents",
    "service_documents",
    "tcp_route_documents",
    "tls_route_documents",
    "udp_route_documents",
]

Doc = dict[str, Any]
T = TypeVar("T")

GATEWAY_API = "gateway.networking.k8s.io"
OUR_CONTROLLER = "nantian.io/gateway-controller"
"""The controller name :func:`documents` gives "our" GatewayClass (``nantian``) unless told otherwise."""
OTHER_CONTROLLER = "example.com/other-controller"
NAMESPACES = ("default", "team-a", "team-b", "infra")
GATEWAYS = ("gw-1", "gw-2", "gw-3")
SERVICES = ("svc-1", "svc-2", "svc-3")
SERVICE_PORTS = (80, 8080)
SECRETS = ("tls-1", "tls-2")
ROUTES = ("route-1", "route-2", "route-3", "route-4")
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute", "UDPRoute")
"""The route kinds :func:`documents` generates."""
HOSTNAMES = ("example.com", "a.example.com", "x.a.example.com", "b.example.com", "*.example.com", "*.a.example.com")
"""Hostnames listeners and routes pick from: exact names, wildcards, and names under wildcards."""
_LISTENER_PORTS = (80, 443, 8080, 8443)
_BAD_PORTS: tuple[Any, ...] = (0, -1, 65536, 100000, "http", 80.5, None, True)
_LABEL_SETS: tuple[dict[str, str], ...] = ({}, {"team": "a"}, {"team": "b"}, {"shared": "true"})
_GROUP_KIND = {"HTTPRoute": GATEWAY_API, "GRPCRoute": GATEWAY_API, "TCPRoute": GATEWAY_API, "TLSRoute": GATEWAY_API}
_ROUTE_KINDS_BY_PROTOCOL = {
    "HTTP": ("HTTPRoute", "GRPCRoute"),
    "HTTPS": ("HTTPRoute", "GRPCRoute"),
    "TLS": ("TLSRoute",),
    "TCP": ("TCPRoute",),
    "UDP": ("UDPRoute",),
}


def _meta(name: str, namespace: str | None = None, **extra: Any) -> Doc:
    meta: Doc = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def _maybe(draw: st.DrawFn, value: T) -> T | None:
    return value if draw(st.booleans()) else None


def _put(target: Doc, key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


# --- core objects ------------------------------------------------------------------------------------------


@st.composite
def namespace_documents(draw: st.DrawFn, name: str | None = None) -> Doc:
    """A Namespace from :data:`NAMESPACES` with some labels (selectors in allowedRoutes pick on them)."""
    ns = name if name is not None else draw(st.sampled_from(NAMESPACES))
    labels = {"kubernetes.io/metadata.name": ns, **draw(st.sampled_from(_LABEL_SETS))}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns, labels=labels)}


@st.composite
def service_documents(draw: st.DrawFn, name: str | None = None, namespace: str | None = None) -> list[Doc]:
    """A Service (ports from :data:`SERVICE_PORTS`) and zero or one EndpointSlice for it."""
    svc = name if name is not None else draw(st.sampled_from(SERVICES))
    ns = namespace if namespace is not None else draw(st.sampled_from(NAMESPACES))
    ports = [80, 8080] if draw(st.booleans()) else [draw(st.sampled_from(SERVICE_PORTS))]
    service: Doc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(svc, ns),
        "spec": {
            "selector": {"app": svc},
            "ports": [{"name": f"p{p}", "port": p, "protocol": "TCP", "targetPort": 3000 + p} for p in ports],
        },
    }
    docs = [service]
    if draw(st.booleans()):
        count = draw(st.integers(min_value=0, max_value=3))
        endpoints = [
            {
                "addresses": [f"10.{NAMESPACES.index(ns)}.{SERVICES.index(svc) if svc in SERVICES else 9}.{i + 1}"],
                "conditions": {"ready": draw(st.booleans()) or i == 0},
            }
            for i in range(count)
        ]
        docs.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": _meta(f"{svc}-abcde", ns, labels={"kubernetes.io/service-name": svc}),
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [{"name": f"p{p}", "port": 3000 + p, "protocol": "TCP"} for p in ports],
            }
        )
    return docs


@st.composite
def secret_documents(draw: st.DrawFn, name: str | None = None, namespace: str | None = None) -> Doc:
    """A ``kubernetes.io/tls`` Secret holding a real certificate and key (one of a few, made once per process)."""
    secret = name if name is not None else draw(st.sampled_from(SECRETS))
    ns = namespace if namespace is not None else draw(st.sampled_from(NAMESPACES))
    index = draw(st.integers(min_value=0, max_value=len(CERT_HOSTS) - 1))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(secret, ns),
        "type": "kubernetes.io/tls",
        "data": tls_secret_data(index),
    }


# --- Gateway API: classes and gateways ---------------------------------------------------------------------


def gateway_class_documents(controller_name: str = OUR_CONTROLLER) -> list[Doc]:
    """Two GatewayClasses: ``nantian`` (``controller_name``) and ``other`` (another implementation's)."""
    return [
        {
            "apiVersion": f"{GATEWAY_API}/v1",
            "kind": "GatewayClass",
            "metadata": _meta(name),
            "spec": {"controllerName": controller},
        }
        for name, controller in (("nantian", controller_name), ("other", OTHER_CONTROLLER))
    ]


@st.composite
def _allowed_routes(draw: st.DrawFn, protocol: str) -> Doc | None:
    choice = draw(st.sampled_from(["absent", "absent", "Same", "All", "All", "All", "Selector", "Selector"]))
    if choice == "absent":
        return None
    namespaces: Doc = {"from": choice}
    if choice == "Selector":
        key, value = draw(st.sampled_from([("team", "a"), ("team", "b"), ("shared", "true")]))
        namespaces["selector"] = {"matchLabels": {key: value}}
    allowed: Doc = {"namespaces": namespaces}
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        kinds = draw(
            st.lists(
                st.sampled_from([*_ROUTE_KINDS_BY_PROTOCOL[protocol], "TCPRoute", "HTTPRoute"]),
                min_size=1,
                max_size=2,
                unique=True,
            )
        )
        allowed["kinds"] = [{"group": GATEWAY_API, "kind": k} for k in kinds]
    return allowed


@st.composite
def _listener(draw: st.DrawFn, name: str, namespace: str, protocols: Sequence[str]) -> Doc:
    protocol = draw(st.sampled_from(protocols))
    listener: Doc = {"name": name, "port": draw(st.sampled_from(_LISTENER_PORTS)), "protocol": protocol}
    if protocol in ("HTTP", "HTTPS", "TLS"):
        _put(listener, "hostname", _maybe(draw, draw(st.sampled_from(HOSTNAMES))))
    if protocol in ("HTTPS", "TLS"):
        mode = "Passthrough" if protocol == "TLS" and draw(st.booleans()) else "Terminate"
        tls: Doc = {"mode": mode} if draw(st.booleans()) or mode == "Passthrough" else {}
        if mode == "Terminate":
            refs = []
            for _ in range(draw(st.integers(min_value=0 if protocol == "TLS" else 1, max_value=2))):
                ref: Doc = {"name": draw(st.sampled_from([*SECRETS, "missing-secret"]))}
                if draw(st.integers(min_value=0, max_value=3)) == 0:
                    ref["namespace"] = draw(st.sampled_from(NAMESPACES))
                if draw(st.booleans()):
                    ref.update(group="", kind="Secret")
                refs.append(ref)
            tls["certificateRefs"] = refs
        listener["tls"] = tls
    _put(listener, "allowedRoutes", draw(_allowed_routes(protocol)))
    return listener


@st.composite
def gateway_documents(
    draw: st.DrawFn, name: str | None = None, namespace: str | None = None, *, max_listeners: int = 4
) -> Doc:
    """A Gateway of class ``nantian``, ``other`` or a missing class, with 1..``max_listeners`` listeners.

    Listeners: HTTP/HTTPS/TLS/TCP/UDP on a few ports, with or without hostnames (wildcards included), TLS
    certificateRefs (present, missing, cross-namespace), allowedRoutes Same/All/Selector (and sometimes kinds).
    Listener names are unique; ports and hostnames may conflict, as users write them.
    """
    gw = name if name is not None else draw(st.sampled_from(GATEWAYS))
    ns = namespace if namespace is not None else draw(st.sampled_from(NAMESPACES))
    count = draw(st.integers(min_value=1, max_value=max_listeners))
    # The first listener is mostly HTTP, so that most routes find somewhere to attach.
    first = draw(_listener("l0", ns, ["HTTP"] * 4 + ["HTTPS", "TCP"]))
    protocols = ["HTTP", "HTTP", "HTTPS", "HTTPS", "TLS", "TCP", "UDP"]
    listeners = [first, *(draw(_listener(f"l{i}", ns, protocols)) for i in range(1, count))]
    gateway_class = draw(st.sampled_from(["nantian"] * 6 + ["other", "missing-class"]))
    return {
        "apiVersion": f"{GATEWAY_API}/v1",
        "kind": "Gateway",
        "metadata": _meta(gw, ns, generation=draw(st.integers(min_value=1, max_value=3))),
        "spec": {"gatewayClassName": gateway_class, "listeners": listeners},
    }


# --- Gateway API: routes -----------------------------------------------------------------------------------


@attrs.frozen
class ExistingObjects:
    """Objects a generated set holds, so routes mostly refer to things that exist (and sometimes not)."""

    gateways: tuple[tuple[str, str], ...] = ()
    """``(namespace, name)`` of each Gateway."""
    services: tuple[tuple[str, str], ...] = ()
    """``(namespace, name)`` of each Service."""


def _target(
    draw: st.DrawFn, existing: tuple[tuple[str, str], ...], names: Sequence[str], missing: str
) -> tuple[str | None, str]:
    """``(namespace or None, name)``: mostly an existing object, else anything from the pools."""
    if existing and draw(st.integers(min_value=0, max_value=4)) > 0:
        return draw(st.sampled_from(existing))
    namespace = draw(st.sampled_from(NAMESPACES)) if draw(st.booleans()) else None
    return namespace, draw(st.sampled_from([*names, missing]))


@st.composite
def _parent_refs(draw: st.DrawFn, namespace: str, existing: ExistingObjects) -> list[Doc]:
    refs = []
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        gw_namespace, gw_name = _target(draw, existing.gateways, GATEWAYS, "missing-gateway")
        ref: Doc = {"name": gw_name}
        if gw_namespace is not None and (gw_namespace != namespace or draw(st.booleans())):
            ref["namespace"] = gw_namespace
        if draw(st.integers(min_value=0, max_value=2)) == 0:
            ref["sectionName"] = draw(st.sampled_from(["l0", "l0", "l1", "l2", "missing-section"]))
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            ref["port"] = draw(st.sampled_from(_LISTENER_PORTS))
        refs.append(ref)
    return _cel_valid_parent_refs(refs)


def _cel_valid_parent_refs(refs: list[Doc]) -> list[Doc]:
    """What the HTTPRoute CRD's CEL rules admit: refs to the same parent (name and namespace as written) all
    have a sectionName, all or none have a port, and no two are equal."""
    by_parent: dict[tuple[str, str | None], list[Doc]] = {}
    for ref in refs:
        by_parent.setdefault((ref["name"], ref.get("namespace")), []).append(ref)
    out: list[Doc] = []
    for group in by_parent.values():
        if len(group) > 1:
            group = [{**ref, "sectionName": ref.get("sectionName", f"l{i}")} for i, ref in enumerate(group)]
            if not all("port" in ref for ref in group):
                group = [{k: v for k, v in ref.items() if k != "port"} for ref in group]
        for ref in group:
            if ref not in out:
                out.append(ref)
    return out


@st.composite
def _overlapping_parent_ref(draw: st.DrawFn, refs: list[Doc], namespace: str) -> list[Doc]:
    """``refs`` with one of them named again in a way the CRD's CEL rules refuse and a file source accepts:
    the whole Gateway next to one of its sections, with and without a port, the route's own namespace spelled
    out, or the very same ref twice."""
    base = draw(st.sampled_from(refs))
    shape = draw(st.sampled_from(["whole", "section", "port", "namespace", "same"]))
    twin = dict(base)
    if shape == "whole":
        twin = {k: v for k, v in base.items() if k not in ("sectionName", "port")}
    elif shape == "section":
        twin["sectionName"] = draw(st.sampled_from(["l0", "l1"]))
    elif shape == "port":
        if "port" in twin:
            del twin["port"]
        else:
            twin["port"] = draw(st.sampled_from(_LISTENER_PORTS))
    elif shape == "namespace":
        twin.setdefault("namespace", namespace)
    out = list(refs)
    out.insert(draw(st.integers(min_value=0, max_value=len(out))), twin)
    return out


@st.composite
def _backend_ref(draw: st.DrawFn, namespace: str, existing: ExistingObjects, *, weighted: bool = True) -> Doc:
    local = tuple(key for key in existing.services if key[0] == namespace)
    svc_namespace: str | None
    if draw(st.booleans()) and local:
        svc_namespace, svc_name = draw(st.sampled_from(local))
    else:
        svc_namespace, svc_name = _target(draw, existing.services, SERVICES, "missing-svc")
    ref: Doc = {"name": svc_name}
    if svc_namespace is not None and (svc_namespace != namespace or draw(st.booleans())):
        ref["namespace"] = svc_namespace
    port = draw(st.sampled_from([80] * 8 + [8080] * 4 + [9999, None]))
    _put(ref, "port", port)
    if weighted and draw(st.booleans()):
        ref["weight"] = draw(st.integers(min_value=0, max_value=10))
    if draw(st.integers(min_value=0, max_value=39)) == 0:
        ref.update(group="example.com", kind="Unknown")
    return ref


def _headers(names: Sequence[str]) -> st.SearchStrategy[list[Doc]]:
    header = st.fixed_dictionaries({"name": st.sampled_from(list(names)), "value": st.sampled_from(["a", "b", "1"])})
    return st.lists(header, max_size=2, unique_by=lambda h: h["name"])


@st.composite
def _header_modifier(draw: st.DrawFn) -> Doc:
    modifier: Doc = {}
    for key in ("set", "add"):
        if draw(st.booleans()):
            modifier[key] = draw(_headers(["X-One", "X-Two"]))
    if draw(st.booleans()):
        modifier["remove"] = draw(st.lists(st.sampled_from(["X-Gone", "X-Old"]), max_size=2, unique=True))
    return modifier


def _path_modifier(full: bool) -> Doc:
    if full:
        return {"type": "ReplaceFullPath", "replaceFullPath": "/new"}
    return {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/prefix"}


@st.composite
def _http_filter(draw: st.DrawFn, kinds: Sequence[str], namespace: str, existing: ExistingObjects) -> Doc:
    kind = draw(st.sampled_from(list(kinds)))
    if kind in ("RequestHeaderModifier", "ResponseHeaderModifier"):
        return {"type": kind, kind[0].lower() + kind[1:]: draw(_header_modifier())}
    if kind == "RequestRedirect":
        redirect: Doc = {}
        _put(redirect, "scheme", _maybe(draw, draw(st.sampled_from(["http", "https"]))))
        _put(redirect, "hostname", _maybe(draw, "redirect.example.com"))
        _put(redirect, "port", _maybe(draw, draw(st.sampled_from([80, 443, 8443]))))
        _put(redirect, "statusCode", _maybe(draw, draw(st.sampled_from([301, 302]))))
        _put(redirect, "path", _maybe(draw, _path_modifier(full=True)))
        return {"type": kind, "requestRedirect": redirect}
    if kind == "URLRewrite":
        rewrite: Doc = {}
        _put(rewrite, "hostname", _maybe(draw, "rewritten.example.com"))
        _put(rewrite, "path", _maybe(draw, _path_modifier(full=draw(st.booleans()))))
        return {"type": kind, "urlRewrite": rewrite}
    if kind == "RequestMirror":
        mirror: Doc = {"backendRef": draw(_backend_ref(namespace, existing, weighted=False))}
        if draw(st.booleans()):
            mirror["percent"] = draw(st.integers(min_value=0, max_value=100))
        return {"type": kind, "requestMirror": mirror}
    # CORS
    return {
        "type": "CORS",
        "cors": {"allowOrigins": ["https://app.example.com"], "allowMethods": ["GET", "POST"], "maxAge": 60},
    }


@st.composite
def _http_match(draw: st.DrawFn) -> Doc:
    match: Doc = {}
    if draw(st.booleans()):
        kind = draw(st.sampled_from(["PathPrefix", "Exact", "RegularExpression", None]))
        value = draw(st.sampled_from(["/", "/api", "/api/v1", "/static"]))
        match["path"] = {"value": value + ".*" if kind == "RegularExpression" else value}
        _put(match["path"], "type", kind)
    if draw(st.booleans()):
        match["headers"] = draw(_headers(["X-Version", "X-Team"]))
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        match["queryParams"] = draw(_headers(["q", "debug"]))
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        match["method"] = draw(st.sampled_from(["GET", "POST"]))
    return match


@st.composite
def _http_rule(draw: st.DrawFn, namespace: str, existing: ExistingObjects) -> Doc:
    rule: Doc = {}
    if draw(st.booleans()):
        rule["matches"] = draw(st.lists(_http_match(), max_size=2))
    if draw(st.booleans()):
        # Redirect and rewrite exclude each other; each filter type appears at most once (CRD rules).
        kinds = draw(
            st.lists(
                st.sampled_from(
                    [
                        "RequestHeaderModifier",
                        "ResponseHeaderModifier",
                        "RequestRedirect",
                        "URLRewrite",
                        "RequestMirror",
                        "CORS",
                    ]
                ),
                max_size=3,
                unique=True,
            )
        )
        if "RequestRedirect" in kinds and "URLRewrite" in kinds:
            kinds.remove("URLRewrite")
        rule["filters"] = [draw(_http_filter([k], namespace, existing)) for k in kinds]
    if not any(f["type"] == "RequestRedirect" for f in rule.get("filters", [])) or draw(st.booleans()):
        rule["backendRefs"] = draw(st.lists(_backend_ref(namespace, existing), min_size=1, max_size=2))
    if draw(st.integers(min_value=0, max_value=4)) == 0:
        rule["timeouts"] = {"request": "10s", "backendRequest": "2s"}
    return rule


@st.composite
def _route(
    draw: st.DrawFn, kind: str, name: str | None, namespace: str | None, existing: ExistingObjects
) -> tuple[Doc, str]:
    route = name if name is not None else draw(st.sampled_from(ROUTES))
    ns = namespace if namespace is not None else draw(st.sampled_from(NAMESPACES))
    meta = _meta(route, ns, generation=draw(st.integers(min_value=1, max_value=3)))
    # Creation time decides conflicts between routes; some share a timestamp to exercise the name tie-break.
    meta["creationTimestamp"] = draw(st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"]))
    spec: Doc = {"parentRefs": draw(_parent_refs(ns, existing))}
    return {"apiVersion": f"{GATEWAY_API}/v1", "kind": kind, "metadata": meta, "spec": spec}, ns


@st.composite
def http_route_documents(
    draw: st.DrawFn, name: str | None = None, namespace: str | None = None, existing: ExistingObjects | None = None
) -> Doc:
    """An HTTPRoute: parentRefs (with/without namespace, sectionName, port), hostnames, rules with matches,
    every standard filter, backendRefs (same/cross namespace, existing/missing Services, weights, bad kinds)."""
    doc, ns = draw(_route("HTTPRoute", name, namespace, existing or ExistingObjects()))
    if draw(st.booleans()):
        doc["spec"]["hostnames"] = draw(st.lists(st.sampled_from(HOSTNAMES), max_size=3, unique=True))
    doc["spec"]["rules"] = draw(st.lists(_http_rule(ns, existing or ExistingObjects()), min_size=1, max_size=3))
    return doc


@st.composite
def _grpc_rule(draw: st.DrawFn, namespace: str, existing: ExistingObjects) -> Doc:
    rule: Doc = {}
    if draw(st.booleans()):
        matches = []
        for _ in range(draw(st.integers(min_value=1, max_value=2))):
            match: Doc = {}
            if draw(st.booleans()):
                method: Doc = {"service": draw(st.sampled_from(["echo.Echo", "pkg.Other"]))}
                _put(method, "method", _maybe(draw, draw(st.sampled_from(["Ping", "Get"]))))
                match["method"] = method
            if draw(st.booleans()):
                match["headers"] = draw(_headers(["x-version", "x-team"]))
            matches.append(match)
        rule["matches"] = matches
    if draw(st.booleans()):
        kinds = draw(st.lists(st.sampled_from(["RequestHeaderModifier", "ResponseHeaderModifier"]), unique=True))
        rule["filters"] = [draw(_http_filter([k], namespace, existing)) for k in kinds]
    rule["backendRefs"] = draw(st.lists(_backend_ref(namespace, existing), min_size=1, max_size=2))
    return rule


@st.composite
def grpc_route_documents(
    draw: st.DrawFn, name: str | None = None, namespace: str | None = None, existing: ExistingObjects | None = None
) -> Doc:
    """A GRPCRoute with method and header matches, header filters and weighted backendRefs."""
    doc, ns = draw(_route("GRPCRoute", name, namespace, existing or ExistingObjects()))
    if draw(st.booleans()):
        doc["spec"]["hostnames"] = draw(st.lists(st.sampled_from(HOSTNAMES), max_size=2, unique=True))
    doc["spec"]["rules"] = draw(st.lists(_grpc_rule(ns, existing or ExistingObjects()), min_size=1, max_size=2))
    return doc


@st.composite
def tcp_route_documents(
    draw: st.DrawFn, name: str | None = None, namespace: str | None = None, existing: ExistingObjects | None = None
) -> Doc:
    """A TCPRoute with one rule of weighted backendRefs."""
    doc, ns = draw(_route("TCPRoute", name, namespace, existing or ExistingObjects()))
    doc["spec"]["rules"] = [
        {"backendRefs": draw(st.lists(_backend_ref(ns, existing or ExistingObjects()), min_size=1, max_size=2))}
    ]
    return doc


@st.composite
def tls_route_documents(
    draw: st.DrawFn, name: str | None = None, namespace: str | None = None, existing: ExistingObjects | None = None
) -> Doc:
    """A TLSRoute (SNI hostnames, for TLS listeners, passthrough or terminated) with weighted backendRefs."""
    doc, ns = draw(_route("TLSRoute", name, namespace, existing or ExistingObjects()))
    # TLSRoute v1 requires hostnames (at least one).
    doc["spec"]["hostnames"] = draw(st.lists(st.sampled_from(HOSTNAMES), min_size=1, max_size=2, unique=True))
    doc["spec"]["rules"] = [
        {"backendRefs": draw(st.lists(_backend_ref(ns, existing or ExistingObjects()), min_size=1, max_size=2))}
    ]
    return doc


@st.composite
def udp_route_documents(
    draw: st.DrawFn, name: str | None = None, namespace: str | None = None, existing: ExistingObjects | None = None
) -> Doc:
    """A UDPRoute with one rule of weighted backendRefs."""
    doc, ns = draw(_route("UDPRoute", name, namespace, existing or ExistingObjects()))
    doc["spec"]["rules"] = [
        {"backendRefs": draw(st.lists(_backend_ref(ns, existing or ExistingObjects()), min_size=1, max_size=2))}
    ]
    return doc


@st.composite
def reference_grant_documents(draw: st.DrawFn, name: str | None = None, namespace: str | None = None) -> Doc:
    """A ReferenceGrant letting routes (or Gateways) of one namespace refer to Services (or Secrets) here."""
    grant = name if name is not None else draw(st.sampled_from(["grant-1", "grant-2"]))
    ns = namespace if namespace is not None else draw(st.sampled_from(NAMESPACES))
    froms = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "group": st.just(GATEWAY_API),
                    "kind": st.sampled_from(["HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute", "UDPRoute", "Gateway"]),
                    "namespace": st.sampled_from(NAMESPACES),
                }
            ),
            min_size=1,
            max_size=2,
        )
    )
    tos = []
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        to: Doc = draw(st.sampled_from([{"group": "", "kind": "Service"}, {"group": "", "kind": "Secret"}]))
        to = dict(to)
        if draw(st.booleans()):
            to["name"] = draw(st.sampled_from([*SERVICES, *SECRETS]))
        tos.append(to)
    return {
        "apiVersion": f"{GATEWAY_API}/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": _meta(grant, ns),
        "spec": {"from": froms, "to": tos},
    }


# --- whole sets --------------------------------------------------------------------------------------------


def _key(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = doc.get("metadata")
    if not isinstance(meta, Mapping):
        meta = {}
    return repr(doc.get("kind")), repr(meta.get("namespace", "")), repr(meta.get("name"))


def _json_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # A named function, not a lambda: Hypothesis checks that ``extend`` uses its argument by parsing its source,
    # and with the lambda that check once failed (a flaky "doesn't use it's argument" deprecation, an error here).
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)


@st.composite
def json_values(draw: st.DrawFn, max_leaves: int = 10) -> Any:
    """Arbitrary JSON-ish values: None, bools, ints, floats (non-finite too), strings, lists, dicts."""
    leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    return draw(st.recursive(leaves, _json_containers, max_leaves=max_leaves))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_paths(v, (*prefix, i)))
    return out


@st.composite
def malformed_documents(draw: st.DrawFn, base: st.SearchStrategy[Doc] | None = None) -> Doc:
    """A generated document with one thing broken: a bad port, an unknown kind, a field removed, or any
    node replaced by an arbitrary JSON value. ``metadata.name`` is kept when the kind is, so the result
    still names the object it breaks (unless the name itself is what broke)."""
    doc = copy.deepcopy(draw(base if base is not None else _any_document()))
    how = draw(st.sampled_from(["port", "kind", "remove", "replace", "replace"]))
    if how == "kind":
        doc["kind"] = draw(st.sampled_from(["Widget", "", "gateway", "HTTPRoutes"]))
        return doc
    if how == "port":
        for path in _paths(doc):
            if path and path[-1] == "port":
                _set(doc, path, draw(st.sampled_from(_BAD_PORTS)))
                return doc
    paths = [p for p in _paths(doc) if p]
    path = draw(st.sampled_from(paths))
    if how == "remove":
        parent = _get(doc, path[:-1])
        del parent[path[-1]]
    else:
        _set(doc, path, draw(json_values(max_leaves=4)))
    return doc


def _get(doc: Any, path: Sequence[Any]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _set(doc: Any, path: Sequence[Any], value: Any) -> None:
    _get(doc, path[:-1])[path[-1]] = value


def _any_document() -> st.SearchStrategy[Doc]:
    return st.one_of(
        gateway_documents(),
        http_route_documents(),
        grpc_route_documents(),
        tcp_route_documents(),
        tls_route_documents(),
        udp_route_documents(),
        reference_grant_documents(),
        namespace_documents(),
        secret_documents(),
        service_documents().map(lambda docs: docs[-1]),
        st.sampled_from(gateway_class_documents()),
    )


def _cross_namespace_refs(docs: Sequence[Doc]) -> list[tuple[str, str, str, str, str]]:
    """(from kind, from namespace, to kind, to namespace, to name) of every cross-namespace reference:
    route backendRefs and mirrors to Services, Gateway certificateRefs to Secrets."""
    found = []
    for doc in docs:
        ns = doc["metadata"].get("namespace", "")
        if doc["kind"] in ROUTE_KINDS:
            for rule in doc["spec"].get("rules", ()):
                refs = list(rule.get("backendRefs", ()))
                refs += [f["requestMirror"]["backendRef"] for f in rule.get("filters", ()) if "requestMirror" in f]
                for ref in refs:
                    if ref.get("namespace", ns) != ns and ref.get("kind", "Service") == "Service":
                        found.append((doc["kind"], ns, "Service", ref["namespace"], ref["name"]))
        elif doc["kind"] == "Gateway":
            for listener in doc["spec"]["listeners"]:
                for ref in (listener.get("tls") or {}).get("certificateRefs", ()):
                    if ref.get("namespace", ns) != ns:
                        found.append(("Gateway", ns, "Secret", ref["namespace"], ref["name"]))
    return sorted(set(found))


@st.composite
def _grants_for_cross_namespace_refs(draw: st.DrawFn, docs: Sequence[Doc]) -> list[Doc]:
    """ReferenceGrants allowing some of the cross-namespace references in ``docs`` (by name or for any)."""
    grants = []
    for i, (from_kind, from_ns, to_kind, to_ns, to_name) in enumerate(_cross_namespace_refs(docs)):
        if draw(st.booleans()):
            to: Doc = {"group": "", "kind": to_kind}
            if draw(st.booleans()):
                to["name"] = to_name
            grants.append(
                {
                    "apiVersion": f"{GATEWAY_API}/v1beta1",
                    "kind": "ReferenceGrant",
                    "metadata": _meta(f"allow-{i}", to_ns),
                    "spec": {"from": [{"group": GATEWAY_API, "kind": from_kind, "namespace": from_ns}], "to": [to]},
                }
            )
    return grants


@st.composite
def documents(
    draw: st.DrawFn,
    *,
    valid: bool | None = True,
    controller_name: str = OUR_CONTROLLER,
    max_gateways: int = 3,
    max_routes: int = 6,
    cel_rules: bool = True,
) -> list[Doc]:
    """A whole resource set as Kubernetes-shaped documents (each object at most once, in a stable order).

    Namespaces (with labels), both GatewayClasses, up to ``max_gateways`` Gateways, up to ``max_routes``
    HTTP/GRPC/TCP routes, Services with EndpointSlices, TLS Secrets with real PEM, ReferenceGrants.

    :param valid: ``True``: every document is schema-valid (references may still dangle, listeners may
        conflict, routes may be refused: those are status, not parse errors). ``False``: one to three
        documents have one thing broken (bad port, unknown kind, a field removed or replaced by arbitrary
        JSON), which usually, not always, makes them fail to parse. ``None``: either.
    :param controller_name: the controller of the ``nantian`` GatewayClass.
    :param cel_rules: ``True``: parentRefs obey the CRD's CEL rules (what an API server admits). ``False``:
        some routes also name one of their parents again in a way those rules refuse but a file source reads
        (``{gw}`` next to ``{gw, sectionName: l0}``, with and without a port, the very same ref twice).
    """
    docs: list[Doc] = [draw(namespace_documents(ns)) for ns in NAMESPACES]
    docs += gateway_class_documents(controller_name)
    gateway_keys = draw(
        st.lists(
            st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(GATEWAYS)),
            min_size=1,
            max_size=max_gateways,
            unique=True,
        )
    )
    docs += [draw(gateway_documents(name, ns)) for ns, name in gateway_keys]
    service_keys = draw(
        st.lists(st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(SERVICES)), min_size=1, max_size=6, unique=True)
    )
    for ns, name in service_keys:
        docs += draw(service_documents(name, ns))
    secret_keys = draw(
        st.lists(st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(SECRETS)), max_size=3, unique=True)
    )
    docs += [draw(secret_documents(name, ns)) for ns, name in secret_keys]
    # Half the routes live next to a Gateway, where the default allowedRoutes (Same) admits them.
    gateway_namespaces = sorted({ns for ns, _ in gateway_keys})
    route_namespaces = st.sampled_from(gateway_namespaces) | st.sampled_from(NAMESPACES)
    route_keys = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["HTTPRoute", "HTTPRoute", "HTTPRoute", "GRPCRoute", *ROUTE_KINDS[2:]]),
                route_namespaces,
                st.sampled_from(ROUTES),
            ),
            min_size=min(2, max_routes),
            max_size=max_routes,
            unique=True,
        )
    )
    makers = {
        "HTTPRoute": http_route_documents,
        "GRPCRoute": grpc_route_documents,
        "TCPRoute": tcp_route_documents,
        "TLSRoute": tls_route_documents,
        "UDPRoute": udp_route_documents,
    }
    existing = ExistingObjects(tuple(gateway_keys), tuple(service_keys))
    routes = [draw(makers[kind](name, ns, existing)) for kind, ns, name in route_keys]
    if not cel_rules:
        for route in routes:
            if draw(st.integers(min_value=0, max_value=2)) == 0:
                spec = route["spec"]
                spec["parentRefs"] = draw(_overlapping_parent_ref(spec["parentRefs"], route["metadata"]["namespace"]))
    docs += routes
    grant_keys = draw(
        st.lists(
            st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(["grant-1", "grant-2"])), max_size=3, unique=True
        )
    )
    docs += [draw(reference_grant_documents(name, ns)) for ns, name in grant_keys]
    docs += draw(_grants_for_cross_namespace_refs(docs))
    if valid is False or (valid is None and draw(st.booleans())):
        for _ in range(draw(st.integers(min_value=1, max_value=3))):
            i = draw(st.integers(min_value=0, max_value=len(docs) - 1))
            docs[i] = draw(malformed_documents(st.just(docs[i])))
        # Breaking a name or kind may make two documents claim the same object: keep the first of each.
        seen: set[tuple[str, str, str]] = set()
        unique_docs = []
        for doc in docs:
            if _key(doc) not in seen:
                seen.add(_key(doc))
                unique_docs.append(doc)
        docs = unique_docs
    return docs
