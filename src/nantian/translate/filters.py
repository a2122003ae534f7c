"""HTTPRoute/GRPCRoute filters -> IR: header modifiers, redirect, rewrite, mirrors, CORS, extension refs.

Each builder returns the IR value or a :class:`Problem` (unsupported value or unresolved reference), so the
route reports it in its status instead of serving something it was not asked for.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from nantian.ir import (
    Cors,
    Header,
    HeaderModifier,
    Mirror,
    PathModifier,
    PathModifierType,
    PluginFilter,
    Redirect,
    Rewrite,
)
from nantian.resources import (
    GRPCRoute,
    HTTPCORSFilter,
    HTTPHeaderFilter,
    HTTPPathModifier,
    HTTPRequestMirrorFilter,
    HTTPRequestRedirectFilter,
    HTTPRoute,
    HTTPURLRewriteFilter,
    LocalObjectReference,
    ObjectRef,
    ResourceSet,
    UnknownObject,
)
from nantian.translate.backends import BackendResolver

__all__ = [
    "Problem",
    "cors",
    "extension",
    "extension_refs",
    "header_modifier",
    "mirror",
    "path_modifier",
    "redirect",
    "rewrite",
]


@attrs.frozen
class Problem:
    """Why a filter cannot be served: ``condition`` is ``Accepted`` or ``ResolvedRefs``."""

    condition: str
    reason: str
    message: str


def header_modifier(f: HTTPHeaderFilter) -> HeaderModifier:
    """A Request/ResponseHeaderModifier filter as an IR header modifier."""
    return HeaderModifier(
        set=tuple(Header(name=h.name, value=h.value) for h in f.set),
        add=tuple(Header(name=h.name, value=h.value) for h in f.add),
        remove=tuple(f.remove),
    )


def path_modifier(p: HTTPPathModifier | None) -> PathModifier | Problem | None:
    """ReplaceFullPath / ReplacePrefixMatch as an IR path modifier."""
    if p is None:
        return None
    if p.type == "ReplaceFullPath" and p.replace_full_path is not None:
        return PathModifier(type=PathModifierType.FULL, value=p.replace_full_path)
    if p.type == "ReplacePrefixMatch" and p.replace_prefix_match is not None:
        return PathModifier(type=PathModifierType.PREFIX, value=p.replace_prefix_match)
    return Problem("Accepted", "UnsupportedValue", f"path modifier type {p.type} is not supported")


def redirect(f: HTTPRequestRedirectFilter) -> Redirect | Problem:
    """A RequestRedirect filter; status codes, ports and schemes the IR cannot carry are problems."""
    path = path_modifier(f.path)
    if isinstance(path, Problem):
        return path
    if f.status_code not in (301, 302, 303, 307, 308):
        return Problem("Accepted", "UnsupportedValue", f"redirect statusCode {f.status_code} is not supported")
    if f.port is not None and not 1 <= f.port <= 65535:
        return Problem("Accepted", "UnsupportedValue", f"redirect port {f.port} is out of range")
    if f.scheme is not None and f.scheme not in ("http", "https"):
        return Problem("Accepted", "UnsupportedValue", f"redirect scheme {f.scheme} is not supported")
    return Redirect(scheme=f.scheme, hostname=f.hostname, port=f.port, path=path, status_code=f.status_code)


def rewrite(f: HTTPURLRewriteFilter) -> Rewrite | Problem:
    """A URLRewrite filter (hostname and/or path)."""
    path = path_modifier(f.path)
    if isinstance(path, Problem):
        return path
    return Rewrite(hostname=f.hostname, path=path)


def mirror(
    f: HTTPRequestMirrorFilter, resolver: BackendResolver, route_kind: str, route_ns: str, client_cert: str | None
) -> Mirror | Problem:
    """A RequestMirror filter: its backendRef resolves like any other; percent or fraction becomes a percentage."""
    ref = f.backend_ref
    res = resolver.resolve(
        group=ref.group,
        kind=ref.kind,
        name=ref.name,
        namespace=ref.namespace,
        port=ref.port,
        route_kind=route_kind,
        route_ns=route_ns,
        client_certificate=client_cert,
    )
    if res.cluster is None:
        return Problem("ResolvedRefs", res.reason if res.reason != "ResolvedRefs" else "BackendNotFound", res.message)
    percent = 100.0
    if f.percent is not None:
        percent = float(f.percent)
    elif f.fraction is not None and f.fraction.denominator > 0:
        percent = 100.0 * f.fraction.numerator / f.fraction.denominator
    if not 0.0 <= percent <= 100.0:
        return Problem("Accepted", "UnsupportedValue", f"mirror percentage {percent} is out of range")
    return Mirror(cluster=res.cluster, percent=percent)


def cors(f: HTTPCORSFilter) -> Cors:
    """The CORS filter as is."""
    return Cors(
        allow_origins=tuple(f.allow_origins),
        allow_methods=tuple(f.allow_methods),
        allow_headers=tuple(f.allow_headers),
        expose_headers=tuple(f.expose_headers),
        max_age=f.max_age,
        allow_credentials=bool(f.allow_credentials),
    )


def extension(ref: LocalObjectReference, route_ns: str, resources: ResourceSet) -> PluginFilter | Problem:
    """An ExtensionRef filter: the target object's ``spec`` goes to the plugin filter factory."""
    target = resources.get(ObjectRef(ref.kind, route_ns, ref.name))
    name = f"{ref.group}/{ref.kind}/{route_ns}/{ref.name}"
    if target is None:
        return Problem("ResolvedRefs", "BackendNotFound", f"extensionRef {name} not found")
    spec: Any = target.body.get("spec", {}) if isinstance(target, UnknownObject) else {}
    try:
        config = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        config = "{}"
    return PluginFilter(name=name, config=config)


def extension_refs(route: HTTPRoute | GRPCRoute) -> tuple[ObjectRef, ...]:
    """Every object an ExtensionRef filter of ``route`` (rule or backendRef level) names: what compiling it reads
    besides the backends."""
    ns = route.metadata.namespace
    out: list[ObjectRef] = []
    for rule in route.spec.rules or ():
        groups = [rule.filters] if rule.filters else []
        groups += [ref.filters for ref in rule.backend_refs if ref.filters]
        for filters in groups:
            for f in filters:
                if f.type == "ExtensionRef" and f.extension_ref is not None:
                    out.append(ObjectRef(f.extension_ref.kind, ns, f.extension_ref.name))
    return tuple(out)
