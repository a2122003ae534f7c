"""GRPCRoute -> IR HTTP routes with ``grpc=True``: POST on ``/service/method`` (exact, prefix or regex)."""

from __future__ import annotations

import re

from nantian.ir import HeaderMatch, HttpMatch, HttpRoute, PathMatch, PathMatchType, StringMatchType
from nantian.resources import GRPCMethodMatch, GRPCRoute, GRPCRouteMatch, ResourceSet
from nantian.translate.backends import BackendResolver
from nantian.translate.compiled import CompiledHttp, Problems
from nantian.translate.filters import Problem
from nantian.translate.httproute import RuleFilters, apply_filters, build_route, check_match, weighted_backends
from nantian.translate.precedence import MatchKey, match_key, route_age

__all__ = ["compile_grpc_route", "grpc_path"]

_SEGMENT = "[^/]+"


def grpc_path(method: GRPCMethodMatch | None) -> PathMatch | Problem:
    """The request path match for a gRPC method match."""
    if method is None or (method.service is None and method.method is None):
        return PathMatch(type=PathMatchType.PREFIX, value="/")
    if method.type == "Exact":
        if method.service and method.method:
            return PathMatch(type=PathMatchType.EXACT, value=f"/{method.service}/{method.method}")
        if method.service:
            return PathMatch(type=PathMatchType.PREFIX, value=f"/{method.service}")
        return PathMatch(type=PathMatchType.REGEX, value=f"/{_SEGMENT}/{re.escape(method.method or '')}")
    if method.type == "RegularExpression":
        service = method.service or _SEGMENT
        name = method.method or _SEGMENT
        try:
            re.compile(service)
            re.compile(name)
        except re.error as exc:
            return Problem("Accepted", "UnsupportedValue", f"invalid method regular expression: {exc}")
        return PathMatch(type=PathMatchType.REGEX, value=f"/{service}/{name}")
    return Problem("Accepted", "UnsupportedValue", f"method match type {method.type} is not supported")


def _match(m: GRPCRouteMatch, problems: Problems) -> HttpMatch | None:
    path = grpc_path(m.method)
    if isinstance(path, Problem):
        problems.add(path)
        return None
    headers = []
    for h in m.headers:
        stype = StringMatchType.REGEX if h.type == "RegularExpression" else StringMatchType.EXACT
        headers.append(HeaderMatch(name=h.name.lower(), value=h.value, type=stype))
    match = HttpMatch(path=path, headers=tuple(headers), method="POST")
    check_match(match, problems)
    return match


def compile_grpc_route(
    route: GRPCRoute, resolver: BackendResolver, resources: ResourceSet, client_cert: str | None
) -> CompiledHttp:
    """Every rule and match of ``route`` as IR routes (``grpc=True``) with precedence keys."""
    ns, name = route.metadata.namespace, route.metadata.name
    age = route_age(route.metadata)
    problems = Problems()
    entries: list[tuple[MatchKey, HttpRoute]] = []
    rules = route.spec.rules or ()
    for ri, rule in enumerate(rules):
        rf = RuleFilters()
        apply_filters(
            rule.filters,
            rf,
            problems,
            resolver=resolver,
            resources=resources,
            route_kind="GRPCRoute",
            route_ns=ns,
            client_cert=client_cert,
        )
        backends = weighted_backends(
            rule.backend_refs,
            problems,
            rf,
            resolver=resolver,
            resources=resources,
            route_kind="GRPCRoute",
            route_ns=ns,
            client_cert=client_cert,
        )
        if rule.session_persistence is not None:
            problems.add(Problem("Accepted", "UnsupportedValue", "sessionPersistence is not supported by nantian"))
        matches = rule.matches or (GRPCRouteMatch(),)
        for mi, m in enumerate(matches):
            match = _match(m, problems)
            if match is None:
                continue
            try:
                ir = build_route(
                    kind="GRPCRoute",
                    ns=ns,
                    name=name,
                    rule_index=ri,
                    match_index=mi,
                    rule_name=rule.name,
                    match=match,
                    rf=rf,
                    backends=backends,
                    timeouts=None,
                    retry=None,
                    grpc=True,
                )
            except (ValueError, TypeError) as exc:
                problems.add(Problem("Accepted", "UnsupportedValue", f"rule {ri}: {exc}"))
                continue
            entries.append((match_key(match, age, ri, mi), ir))
    return CompiledHttp(entries=tuple(entries), problems=problems)
