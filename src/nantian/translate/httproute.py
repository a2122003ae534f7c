"""HTTPRoute -> IR :class:`~nantian.ir.HttpRoute` values (one per rule and match), with precedence keys."""

from __future__ import annotations

import re
from collections.abc import Sequence

from nantian.ir import (
    Cors,
    HeaderMatch,
    HeaderModifier,
    HttpMatch,
    HttpRoute,
    Mirror,
    PathMatch,
    PathMatchType,
    PathModifierType,
    PluginFilter,
    QueryMatch,
    Redirect,
    Retry,
    Rewrite,
    StringMatchType,
    Timeouts,
    WeightedCluster,
)
from nantian.resources import (
    BackendRef,
    GRPCBackendRef,
    GRPCRouteFilter,
    HTTPBackendRef,
    HTTPRoute,
    HTTPRouteFilter,
    HTTPRouteMatch,
    HTTPRouteRule,
    ResourceSet,
    parse_duration,
)
from nantian.translate import filters as fb
from nantian.translate.backends import BackendResolver
from nantian.translate.compiled import CompiledHttp, Problems
from nantian.translate.filters import Problem
from nantian.translate.precedence import MatchKey, match_key, route_age

__all__ = ["RuleFilters", "apply_filters", "check_match", "compile_http_route", "weighted_backends"]

_PATH_TYPES = {
    "Exact": PathMatchType.EXACT,
    "PathPrefix": PathMatchType.PREFIX,
    "RegularExpression": PathMatchType.REGEX,
}
_STRING_TYPES = {"Exact": StringMatchType.EXACT, "RegularExpression": StringMatchType.REGEX}


class RuleFilters:
    """The IR form of a rule's filters (shared by HTTPRoute and GRPCRoute rules)."""

    __slots__ = ("cors", "mirrors", "plugins", "redirect", "request_headers", "response_headers", "rewrite")

    def __init__(self) -> None:
        self.request_headers: HeaderModifier | None = None
        self.response_headers: HeaderModifier | None = None
        self.redirect: Redirect | None = None
        self.rewrite: Rewrite | None = None
        self.mirrors: list[Mirror] = []
        self.cors: Cors | None = None
        self.plugins: list[PluginFilter] = []


def apply_filters(
    filters: Sequence[HTTPRouteFilter | GRPCRouteFilter],
    out: RuleFilters,
    problems: Problems,
    *,
    resolver: BackendResolver,
    resources: ResourceSet,
    route_kind: str,
    route_ns: str,
    client_cert: str | None,
) -> None:
    """Fill ``out`` from ``filters``; anything nantian cannot serve goes to ``problems``."""
    for f in filters:
        result: object = None
        if f.type == "RequestHeaderModifier" and f.request_header_modifier is not None:
            out.request_headers = fb.header_modifier(f.request_header_modifier)
        elif f.type == "ResponseHeaderModifier" and f.response_header_modifier is not None:
            out.response_headers = fb.header_modifier(f.response_header_modifier)
        elif f.type == "RequestMirror" and f.request_mirror is not None:
            result = fb.mirror(f.request_mirror, resolver, route_kind, route_ns, client_cert)
            if isinstance(result, Mirror):
                out.mirrors.append(result)
        elif f.type == "ExtensionRef" and f.extension_ref is not None:
            result = fb.extension(f.extension_ref, route_ns, resources)
            if isinstance(result, PluginFilter):
                out.plugins.append(result)
        elif isinstance(f, HTTPRouteFilter) and f.type == "RequestRedirect" and f.request_redirect is not None:
            result = fb.redirect(f.request_redirect)
            if isinstance(result, Redirect):
                out.redirect = result
        elif isinstance(f, HTTPRouteFilter) and f.type == "URLRewrite" and f.url_rewrite is not None:
            result = fb.rewrite(f.url_rewrite)
            if isinstance(result, Rewrite):
                out.rewrite = result
        elif isinstance(f, HTTPRouteFilter) and f.type == "CORS" and f.cors is not None:
            out.cors = fb.cors(f.cors)
        else:
            result = Problem("Accepted", "UnsupportedValue", f"filter type {f.type} is not supported by nantian")
        if isinstance(result, Problem):
            problems.add(result)


_NOTHING_LIFTED: tuple[None, None] = (None, None)


def weighted_backends(
    refs: Sequence[HTTPBackendRef | GRPCBackendRef | BackendRef],
    problems: Problems,
    rule_filters: RuleFilters,
    *,
    resolver: BackendResolver,
    resources: ResourceSet,
    route_kind: str,
    route_ns: str,
    client_cert: str | None,
) -> tuple[WeightedCluster, ...]:
    """One :class:`WeightedCluster` per backendRef; invalid ones keep ``cluster=None`` (their share answers 500).

    Backend-level redirect/rewrite filters are lifted to the rule when every backend agrees on them (the IR
    applies them per rule); otherwise they are reported as unsupported.
    """
    out: list[WeightedCluster] = []
    lifted: list[tuple[Redirect | None, Rewrite | None]] = []
    for ref in refs:
        filters = ref.filters if isinstance(ref, HTTPBackendRef | GRPCBackendRef) else ()
        if not filters:
            res, plain = resolver.weighted(ref, route_kind, route_ns, client_cert)
            if res.service is not None:
                problems.services.add(res.service)
            if res.cluster is None and res.reason != "ResolvedRefs":
                problems.add(Problem("ResolvedRefs", res.reason, res.message))
            lifted.append(_NOTHING_LIFTED)
            out.append(plain)
            continue
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
        if res.service is not None:
            problems.services.add(res.service)
        if res.cluster is None and res.reason != "ResolvedRefs":
            problems.add(Problem("ResolvedRefs", res.reason, res.message))
        own = RuleFilters()
        apply_filters(
            filters,
            own,
            problems,
            resolver=resolver,
            resources=resources,
            route_kind=route_kind,
            route_ns=route_ns,
            client_cert=client_cert,
        )
        if own.mirrors or own.cors or own.plugins:
            problems.add(
                Problem(
                    "Accepted", "UnsupportedValue", "backendRef filters may only modify headers, redirect or rewrite"
                )
            )
        lifted.append((own.redirect, own.rewrite))
        request_headers, response_headers = own.request_headers, own.response_headers
        out.append(
            WeightedCluster(
                cluster=res.cluster,
                weight=ref.weight if ref.weight > 0 else 0,
                request_headers=request_headers,
                response_headers=response_headers,
            )
        )
    if any(r is not _NOTHING_LIFTED and r != _NOTHING_LIFTED for r in lifted):
        if all(r == lifted[0] for r in lifted):
            redirect, rewrite = lifted[0]
            rule_filters.redirect = rule_filters.redirect or redirect
            rule_filters.rewrite = rule_filters.rewrite or rewrite
        else:
            problems.add(
                Problem(
                    "Accepted", "UnsupportedValue", "backendRefs of one rule carry different redirect/rewrite filters"
                )
            )
    return tuple(out)


def _seconds(value: str | None, what: str, problems: Problems) -> float | None:
    """Seconds of a Gateway API duration; ``0s`` (or absent) means none; unparsable ones are reported."""
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError:
        problems.add(Problem("Accepted", "UnsupportedValue", f"{what} {value!r} is not a valid duration"))
        return None
    return seconds if seconds > 0 else None


def _timeouts_retry(rule: HTTPRouteRule, problems: Problems) -> tuple[Timeouts | None, Retry | None]:
    timeouts = None
    if rule.timeouts is not None:
        request = _seconds(rule.timeouts.request, "timeouts.request", problems)
        backend = _seconds(rule.timeouts.backend_request, "timeouts.backendRequest", problems)
        if request is not None and backend is not None and backend > request:
            problems.add(Problem("Accepted", "UnsupportedValue", "timeouts.backendRequest exceeds timeouts.request"))
        timeouts = Timeouts(request=request, backend_request=backend)
    retry = None
    if rule.retry is not None:
        attempts = rule.retry.attempts if rule.retry.attempts is not None else 1
        retry = Retry(
            codes=tuple(rule.retry.codes),
            attempts=max(0, attempts),
            backoff=_seconds(rule.retry.backoff, "retry.backoff", problems),
        )
    if rule.session_persistence is not None:
        problems.add(Problem("Accepted", "UnsupportedValue", "sessionPersistence is not supported by nantian"))
    return timeouts, retry


def _match(m: HTTPRouteMatch) -> HttpMatch:
    path = m.path
    return HttpMatch(
        path=PathMatch(type=_PATH_TYPES.get(path.type, PathMatchType.PREFIX), value=path.value),
        headers=tuple(
            [
                HeaderMatch(name=h.name.lower(), value=h.value, type=_STRING_TYPES.get(h.type, StringMatchType.EXACT))
                for h in m.headers
            ]
        ),
        query=tuple(
            [
                QueryMatch(name=q.name, value=q.value, type=_STRING_TYPES.get(q.type, StringMatchType.EXACT))
                for q in m.query_params
            ]
        ),
        method=m.method,
    )


def _regex_problem(what: str, pattern: str) -> Problem | None:
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return Problem("Accepted", "UnsupportedValue", f"{what} {pattern!r} is not a valid regular expression: {exc}")
    return None


def check_match(m: HttpMatch, problems: Problems) -> None:
    """Report what the data plane could not serve: paths not starting with ``/``, invalid regular expressions."""
    found: list[Problem | None] = []
    if m.path.type == PathMatchType.REGEX:
        found.append(_regex_problem("path", m.path.value))
    elif not m.path.value.startswith("/"):
        found.append(Problem("Accepted", "UnsupportedValue", f"path {m.path.value!r} must start with /"))
    for h in m.headers:
        if h.type == StringMatchType.REGEX:
            found.append(_regex_problem(f"header {h.name}", h.value))
    for q in m.query:
        if q.type == StringMatchType.REGEX:
            found.append(_regex_problem(f"query parameter {q.name}", q.value))
    for p in found:
        if p is not None:
            problems.add(p)


def build_route(
    *,
    kind: str,
    ns: str,
    name: str,
    rule_index: int,
    match_index: int,
    rule_name: str | None,
    match: HttpMatch,
    rf: RuleFilters,
    backends: tuple[WeightedCluster, ...],
    timeouts: Timeouts | None,
    retry: Retry | None,
    grpc: bool,
) -> HttpRoute:
    """One IR route; a rule without a usable backend (and no redirect) answers 500 locally."""
    usable = any(b.cluster is not None and b.weight > 0 for b in backends)
    direct = None if usable or rf.redirect is not None else 500
    return HttpRoute(
        name=f"{kind}/{ns}/{name}/{rule_index}/{match_index}",
        route=f"{kind}/{ns}/{name}",
        rule_name=rule_name,
        match=match,
        request_headers=rf.request_headers,
        response_headers=rf.response_headers,
        redirect=rf.redirect,
        rewrite=rf.rewrite,
        mirrors=tuple(rf.mirrors),
        cors=rf.cors,
        plugin_filters=tuple(rf.plugins),
        backends=backends,
        direct_status=direct,
        timeouts=timeouts,
        retry=retry,
        grpc=grpc,
    )


def compile_http_route(
    route: HTTPRoute, resolver: BackendResolver, resources: ResourceSet, client_cert: str | None
) -> CompiledHttp:
    """Every rule and match of ``route`` as IR routes with precedence keys, and the route's problems."""
    ns, name = route.metadata.namespace, route.metadata.name
    age = route_age(route.metadata)
    problems = Problems()
    entries: list[tuple[MatchKey, HttpRoute]] = []
    for ri, rule in enumerate(route.spec.rules):
        rf = RuleFilters()
        if rule.filters:
            apply_filters(
                rule.filters,
                rf,
                problems,
                resolver=resolver,
                resources=resources,
                route_kind="HTTPRoute",
                route_ns=ns,
                client_cert=client_cert,
            )
        backends = weighted_backends(
            rule.backend_refs,
            problems,
            rf,
            resolver=resolver,
            resources=resources,
            route_kind="HTTPRoute",
            route_ns=ns,
            client_cert=client_cert,
        )
        timeouts, retry = _timeouts_retry(rule, problems)
        for mi, m in enumerate(rule.matches):
            match = _match(m)
            check_match(match, problems)
            if match.path.type != PathMatchType.PREFIX and (rf.rewrite is not None or rf.redirect is not None):
                mods = [x.path for x in (rf.rewrite, rf.redirect) if x is not None and x.path is not None]
                if any(p.type == PathModifierType.PREFIX for p in mods):
                    problems.add(Problem("Accepted", "UnsupportedValue", "ReplacePrefixMatch needs a PathPrefix match"))
            try:
                ir = build_route(
                    kind="HTTPRoute",
                    ns=ns,
                    name=name,
                    rule_index=ri,
                    match_index=mi,
                    rule_name=rule.name,
                    match=match,
                    rf=rf,
                    backends=backends,
                    timeouts=timeouts,
                    retry=retry,
                    grpc=False,
                )
            except (ValueError, TypeError) as exc:  # an IR validator refused a value: report, do not serve
                problems.add(Problem("Accepted", "UnsupportedValue", f"rule {ri}: {exc}"))
                continue
            entries.append((match_key(match, age, ri, mi), ir))
    return CompiledHttp(entries=tuple(entries), problems=problems)
