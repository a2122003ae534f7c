"""HTTPRoute: matches, filters, backends, timeouts, retry and session persistence.

The header-modifier and mirror filter types are shared with GRPCRoute.
"""

from __future__ import annotations

import attrs

from nantian.resources.meta import GATEWAY_GROUP, KubeObjectBase, ObjectMeta
from nantian.resources.references import (
    BackendObjectReference,
    BackendRef,
    LocalObjectReference,
    ParentReference,
)

__all__ = [
    "CookieConfig",
    "Fraction",
    "HTTPBackendRef",
    "HTTPCORSFilter",
    "HTTPHeader",
    "HTTPHeaderFilter",
    "HTTPHeaderMatch",
    "HTTPPathMatch",
    "HTTPPathModifier",
    "HTTPQueryParamMatch",
    "HTTPRequestMirrorFilter",
    "HTTPRequestRedirectFilter",
    "HTTPRoute",
    "HTTPRouteFilter",
    "HTTPRouteMatch",
    "HTTPRouteRetry",
    "HTTPRouteRule",
    "HTTPRouteSpec",
    "HTTPRouteTimeouts",
    "HTTPURLRewriteFilter",
    "SessionPersistence",
]


@attrs.frozen(kw_only=True)
class HTTPPathMatch:
    """``Exact``, ``PathPrefix`` (default) or ``RegularExpression`` on the path; default ``PathPrefix /``."""

    type: str = "PathPrefix"
    value: str = "/"


@attrs.frozen(kw_only=True)
class HTTPHeaderMatch:
    """A header match, ``Exact`` (default) or ``RegularExpression``. Names are case-insensitive."""

    type: str = "Exact"
    name: str
    value: str


@attrs.frozen(kw_only=True)
class HTTPQueryParamMatch:
    """A query parameter match, ``Exact`` (default) or ``RegularExpression``."""

    type: str = "Exact"
    name: str
    value: str


@attrs.frozen(kw_only=True)
class HTTPRouteMatch:
    """Conditions ANDed together. Absent ``path`` is ``PathPrefix /`` (the CRD default)."""

    path: HTTPPathMatch = HTTPPathMatch()
    headers: tuple[HTTPHeaderMatch, ...] = ()
    query_params: tuple[HTTPQueryParamMatch, ...] = ()
    method: str | None = None


@attrs.frozen(kw_only=True)
class HTTPHeader:
    """A header name and value."""

    name: str
    value: str


@attrs.frozen(kw_only=True)
class HTTPHeaderFilter:
    """Set, add and remove headers (request or response)."""

    set: tuple[HTTPHeader, ...] = ()
    add: tuple[HTTPHeader, ...] = ()
    remove: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class HTTPPathModifier:
    """``ReplaceFullPath`` or ``ReplacePrefixMatch``, with the matching replacement field."""

    type: str
    replace_full_path: str | None = None
    replace_prefix_match: str | None = None


@attrs.frozen(kw_only=True)
class HTTPRequestRedirectFilter:
    """Answer with a redirect; unset parts keep the request's. ``status_code`` defaults to 302."""

    scheme: str | None = None
    hostname: str | None = None
    path: HTTPPathModifier | None = None
    port: int | None = None
    status_code: int = 302


@attrs.frozen(kw_only=True)
class HTTPURLRewriteFilter:
    """Rewrite host and/or path before forwarding."""

    hostname: str | None = None
    path: HTTPPathModifier | None = None


@attrs.frozen(kw_only=True)
class Fraction:
    """``numerator/denominator`` of requests (denominator defaults to 100)."""

    numerator: int
    denominator: int = 100


@attrs.frozen(kw_only=True)
class HTTPRequestMirrorFilter:
    """Copy requests to another backend; all of them unless ``percent`` or ``fraction`` is set."""

    backend_ref: BackendObjectReference
    percent: int | None = None
    fraction: Fraction | None = None


@attrs.frozen(kw_only=True)
class HTTPCORSFilter:
    """CORS: allowed origins, methods and headers, exposed headers, credentials, ``max_age`` (default 5 s)."""

    allow_origins: tuple[str, ...] = ()
    allow_credentials: bool | None = None
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int = 5


@attrs.frozen(kw_only=True)
class HTTPRouteFilter:
    """One filter; ``type`` says which of the other fields is set."""

    type: str
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_mirror: HTTPRequestMirrorFilter | None = None
    request_redirect: HTTPRequestRedirectFilter | None = None
    url_rewrite: HTTPURLRewriteFilter | None = None
    cors: HTTPCORSFilter | None = None
    extension_ref: LocalObjectReference | None = None


@attrs.frozen(kw_only=True)
class HTTPBackendRef(BackendRef):
    """A weighted backend with filters applied only to requests sent to it."""

    filters: tuple[HTTPRouteFilter, ...] = ()


@attrs.frozen(kw_only=True)
class HTTPRouteTimeouts:
    """Durations as written (``"10s"``); see :func:`nantian.resources.parse_duration`."""

    request: str | None = None
    backend_request: str | None = None


@attrs.frozen(kw_only=True)
class HTTPRouteRetry:
    """Retry policy: status ``codes``, ``attempts``, ``backoff`` duration as written."""

    codes: tuple[int, ...] = ()
    attempts: int | None = None
    backoff: str | None = None


@attrs.frozen(kw_only=True)
class CookieConfig:
    """Session cookie lifetime: ``Session`` (default) or ``Permanent``."""

    lifetime_type: str = "Session"


@attrs.frozen(kw_only=True)
class SessionPersistence:
    """Sticky sessions by ``Cookie`` (default) or ``Header``."""

    session_name: str | None = None
    absolute_timeout: str | None = None
    idle_timeout: str | None = None
    type: str = "Cookie"
    cookie_config: CookieConfig | None = None


_DEFAULT_MATCHES = (HTTPRouteMatch(),)


@attrs.frozen(kw_only=True)
class HTTPRouteRule:
    """Matches (default: ``PathPrefix /``), filters and backends of one rule."""

    name: str | None = None
    matches: tuple[HTTPRouteMatch, ...] = _DEFAULT_MATCHES
    filters: tuple[HTTPRouteFilter, ...] = ()
    backend_refs: tuple[HTTPBackendRef, ...] = ()
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None
    session_persistence: SessionPersistence | None = None


@attrs.frozen(kw_only=True)
class HTTPRouteSpec:
    """Parents, hostnames and rules (default: one rule matching every path, with no backend)."""

    parent_refs: tuple[ParentReference, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[HTTPRouteRule, ...] = (HTTPRouteRule(),)


@attrs.frozen(kw_only=True)
class HTTPRoute(KubeObjectBase):
    """Routes HTTP requests from its parents' listeners to backends."""

    KIND = "HTTPRoute"
    GROUP = GATEWAY_GROUP

    metadata: ObjectMeta
    spec: HTTPRouteSpec
