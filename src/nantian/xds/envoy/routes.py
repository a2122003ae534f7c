"""IR HTTP routes -> Envoy v3 route configuration (one Envoy virtual host per hostname). Pure functions."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2

from nantian.ir import Cors, HeaderModifier, HttpRoute, PathMatchType, PathModifierType, StringMatchType, VirtualHost
from nantian.xds.envoy._pack import pack, seconds

__all__ = ["INVALID_BACKEND", "route", "route_configuration"]

log = logging.getLogger(__name__)

INVALID_BACKEND = "nantian/invalid-backend"
"""A cluster name that never exists: traffic for an invalid backendRef answers 500 (Gateway API)."""


# --- routes -----------------------------------------------------------------------------------------
def _string_match(kind: StringMatchType, value: str) -> string_pb2.StringMatcher:
    if kind is StringMatchType.REGEX:
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=value))
    return string_pb2.StringMatcher(exact=value)


def _match(route: HttpRoute) -> route_components_pb2.RouteMatch:
    m = route.match
    out = route_components_pb2.RouteMatch()
    if m.path.type is PathMatchType.EXACT:
        out.path = m.path.value
    elif m.path.type is PathMatchType.REGEX:
        out.safe_regex.regex = m.path.value
    elif m.path.value.rstrip("/") == "":
        out.prefix = "/"
    else:
        out.path_separated_prefix = m.path.value.rstrip("/")
    for h in m.headers:
        out.headers.add(name=h.name, string_match=_string_match(h.type, h.value))
    for q in m.query:
        out.query_parameters.add(name=q.name, string_match=_string_match(q.type, q.value))
    if m.method is not None:
        out.headers.add(name=":method", string_match=string_pb2.StringMatcher(exact=m.method))
    return out


def _request_headers(target: object, modifier: HeaderModifier | None) -> None:
    if modifier is None:
        return
    for h in modifier.set:
        target.request_headers_to_add.add(  # type: ignore[attr-defined]
            header=base_pb2.HeaderValue(key=h.name, value=h.value),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
        )
    for h in modifier.add:
        target.request_headers_to_add.add(  # type: ignore[attr-defined]
            header=base_pb2.HeaderValue(key=h.name, value=h.value),
            append_action=base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD,
        )
    target.request_headers_to_remove.extend(modifier.remove)  # type: ignore[attr-defined]


def _response_headers(target: object, modifier: HeaderModifier | None) -> None:
    if modifier is None:
        return
    for h in modifier.set:
        target.response_headers_to_add.add(  # type: ignore[attr-defined]
            header=base_pb2.HeaderValue(key=h.name, value=h.value),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
        )
    for h in modifier.add:
        target.response_headers_to_add.add(  # type: ignore[attr-defined]
            header=base_pb2.HeaderValue(key=h.name, value=h.value),
            append_action=base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD,
        )
    target.response_headers_to_remove.extend(modifier.remove)  # type: ignore[attr-defined]


_REDIRECT_CODES = {
    301: route_components_pb2.RedirectAction.MOVED_PERMANENTLY,
    302: route_components_pb2.RedirectAction.FOUND,
    303: route_components_pb2.RedirectAction.SEE_OTHER,
    307: route_components_pb2.RedirectAction.TEMPORARY_REDIRECT,
    308: route_components_pb2.RedirectAction.PERMANENT_REDIRECT,
}


def route(r: HttpRoute) -> route_components_pb2.Route:
    """One Envoy route for one IR route (match and action)."""
    out = route_components_pb2.Route(name=r.name, match=_match(r))
    _request_headers(out, r.request_headers)
    _response_headers(out, r.response_headers)
    if r.plugin_filters:
        log.warning("envoy.unsupported route=%s what=plugin filters", r.name)
    if r.cors is not None:
        out.typed_per_filter_config["envoy.filters.http.cors"].CopyFrom(pack(_cors(r.cors)))
    if r.redirect is not None:
        rd = r.redirect
        action = out.redirect
        action.response_code = _REDIRECT_CODES[rd.status_code]
        if rd.scheme:
            action.scheme_redirect = rd.scheme
        if rd.hostname:
            action.host_redirect = rd.hostname
        if rd.port is not None:
            action.port_redirect = rd.port
        if rd.path is not None:
            if rd.path.type is PathModifierType.FULL:
                action.path_redirect = rd.path.value
            else:
                action.prefix_rewrite = rd.path.value
        return out
    if r.direct_status is not None or not r.backends:
        out.direct_response.status = r.direct_status or 500
        return out
    action = out.route
    action.cluster_not_found_response_code = route_components_pb2.RouteAction.INTERNAL_SERVER_ERROR
    live = [b for b in r.backends if b.weight > 0]
    if not live:
        out.ClearField("route")
        out.direct_response.status = 500
        return out
    plain = len(live) == 1 and live[0].request_headers is None and live[0].response_headers is None
    if plain:
        action.cluster = live[0].cluster or INVALID_BACKEND
    else:
        for b in live:
            wc = action.weighted_clusters.clusters.add(name=b.cluster or INVALID_BACKEND)
            wc.weight.value = b.weight
            _request_headers(wc, b.request_headers)
            _response_headers(wc, b.response_headers)
    if r.rewrite is not None:
        if r.rewrite.hostname:
            action.host_rewrite_literal = r.rewrite.hostname
        if r.rewrite.path is not None:
            if r.rewrite.path.type is PathModifierType.FULL:
                action.regex_rewrite.pattern.regex = ".*"
                action.regex_rewrite.substitution = r.rewrite.path.value
            else:
                action.prefix_rewrite = r.rewrite.path.value
    for m in r.mirrors:
        policy = action.request_mirror_policies.add(cluster=m.cluster)
        policy.runtime_fraction.default_value.CopyFrom(
            percent_pb2.FractionalPercent(
                numerator=int(m.percent * 10_000), denominator=percent_pb2.FractionalPercent.MILLION
            )
        )
    if r.timeouts is not None:
        if r.timeouts.request is not None:
            action.timeout.CopyFrom(seconds(r.timeouts.request))
        if r.timeouts.backend_request is not None:
            action.retry_policy.per_try_timeout.CopyFrom(seconds(r.timeouts.backend_request))
    if r.retry is not None and r.retry.attempts > 0:
        policy = action.retry_policy
        policy.num_retries.value = r.retry.attempts
        policy.retry_on = "connect-failure,refused-stream,reset" if r.retry.connection_errors else ""
        if r.retry.codes:
            policy.retriable_status_codes.extend(r.retry.codes)
            policy.retry_on = ",".join(filter(None, [policy.retry_on, "retriable-status-codes"]))
        if r.retry.backoff is not None:
            policy.retry_back_off.base_interval.CopyFrom(seconds(r.retry.backoff))
    return out


def _cors(cors: Cors) -> object:
    from envoy.extensions.filters.http.cors.v3 import cors_pb2

    policy = cors_pb2.CorsPolicy(
        allow_methods=", ".join(cors.allow_methods),
        allow_headers=", ".join(cors.allow_headers),
        expose_headers=", ".join(cors.expose_headers),
    )
    if cors.max_age is not None:
        policy.max_age = str(cors.max_age)
    policy.allow_credentials.value = cors.allow_credentials
    for origin in cors.allow_origins:
        if "*" in origin:
            pattern = ".*" if origin == "*" else re.escape(origin).replace(r"\*", "[^/]+")
            policy.allow_origin_string_match.add(safe_regex=regex_pb2.RegexMatcher(regex=pattern))
        else:
            policy.allow_origin_string_match.add(exact=origin)
    return policy


def _domain(hostname: str, port: int) -> list[str]:
    return ["*"] if hostname == "*" else [hostname, f"{hostname}:{port}"]


def route_configuration(name: str, vhosts: Iterable[VirtualHost], port: int) -> route_pb2.RouteConfiguration:
    """IR virtual hosts -> one Envoy virtual host per hostname, routes in IR precedence order.

    Virtual hosts of several sections with the same hostname are merged, most specific section first.
    """
    merged: dict[str, list[HttpRoute]] = {}

    def section_rank(vh: VirtualHost) -> tuple[int, int]:
        h = vh.section_hostname
        if h is None:
            return (2, 0)
        return (1, -len(h)) if h.startswith("*.") else (0, -len(h))

    for vh in sorted(vhosts, key=section_rank):
        merged.setdefault(vh.hostname, []).extend(vh.routes)
    out = route_pb2.RouteConfiguration(name=name)
    for i, (hostname, routes) in enumerate(merged.items()):
        vh_out = out.virtual_hosts.add(name=f"{name}/{i}/{hostname}", domains=_domain(hostname, port))
        vh_out.routes.extend(route(r) for r in routes)
    return out
