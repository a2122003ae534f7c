"""HTTP and gRPC routing in the IR: one :class:`HttpRoute` per (rule, match), already in precedence order.

A GRPCRoute becomes HTTP routes too (``/service/method`` path matches on POST with ``content-type``
``application/grpc``), so the data plane has one router.
"""

from __future__ import annotations

import enum

import attrs
from attrs import validators as v

__all__ = [
    "Cors",
    "Header",
    "HeaderMatch",
    "HeaderModifier",
    "HttpMatch",
    "HttpRoute",
    "Mirror",
    "PathMatch",
    "PathMatchType",
    "PathModifier",
    "PathModifierType",
    "PluginFilter",
    "QueryMatch",
    "Redirect",
    "Retry",
    "Rewrite",
    "StringMatchType",
    "Timeouts",
    "WeightedCluster",
]


class PathMatchType(enum.Enum):
    EXACT = "Exact"
    PREFIX = "PathPrefix"
    REGEX = "RegularExpression"


class StringMatchType(enum.Enum):
    EXACT = "Exact"
    REGEX = "RegularExpression"


class PathModifierType(enum.Enum):
    FULL = "ReplaceFullPath"
    PREFIX = "ReplacePrefixMatch"


@attrs.frozen(kw_only=True)
class PathMatch:
    """How the request path must look. A prefix matches whole segments: ``/v2`` matches ``/v2/x``, not ``/v2x``."""

    type: PathMatchType = PathMatchType.PREFIX
    value: str = "/"


@attrs.frozen(kw_only=True)
class HeaderMatch:
    """A request header that must be present with this value. ``name`` is lower case."""

    name: str
    value: str
    type: StringMatchType = StringMatchType.EXACT


@attrs.frozen(kw_only=True)
class QueryMatch:
    """A query parameter that must be present with this value (name compared exactly)."""

    name: str
    value: str
    type: StringMatchType = StringMatchType.EXACT


@attrs.frozen(kw_only=True)
class HttpMatch:
    """Every part must hold for a request to match. ``method`` ``None`` matches any method."""

    path: PathMatch = PathMatch()
    headers: tuple[HeaderMatch, ...] = ()
    query: tuple[QueryMatch, ...] = ()
    method: str | None = None


@attrs.frozen(kw_only=True)
class Header:
    name: str
    value: str


@attrs.frozen(kw_only=True)
class HeaderModifier:
    """Set (replace), add (append) and remove headers, in that order of application: remove, set, add."""

    set: tuple[Header, ...] = ()
    add: tuple[Header, ...] = ()
    remove: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class PathModifier:
    """``FULL``: the path becomes ``value``. ``PREFIX``: the matched prefix is replaced with ``value``."""

    type: PathModifierType
    value: str


@attrs.frozen(kw_only=True)
class Redirect:
    """Answer with a redirect instead of forwarding. ``None`` fields keep the request's value."""

    scheme: str | None = None
    hostname: str | None = None
    port: int | None = attrs.field(default=None, validator=v.optional([v.ge(1), v.le(65535)]))
    path: PathModifier | None = None
    status_code: int = attrs.field(default=302, validator=v.in_((301, 302, 303, 307, 308)))


@attrs.frozen(kw_only=True)
class Rewrite:
    """Change the request before forwarding it: the Host header and/or the path."""

    hostname: str | None = None
    path: PathModifier | None = None


@attrs.frozen(kw_only=True)
class Mirror:
    """Send a copy of the request to ``cluster``; its response is discarded and never delays the primary."""

    cluster: str
    percent: float = attrs.field(default=100.0, validator=[v.ge(0.0), v.le(100.0)])


@attrs.frozen(kw_only=True)
class Cors:
    """The CORS filter: answers preflights locally and adds CORS headers to responses of allowed origins."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False


@attrs.frozen(kw_only=True)
class Timeouts:
    """Seconds. ``request``: the whole exchange, retries included. ``backend_request``: one upstream try."""

    request: float | None = None
    backend_request: float | None = None


@attrs.frozen(kw_only=True)
class Retry:
    """Retry failed upstream attempts: responses with one of ``codes``, or connection errors."""

    codes: tuple[int, ...] = ()
    attempts: int = attrs.field(default=1, validator=v.ge(0))
    backoff: float | None = None
    """Seconds between attempts; ``None`` leaves it to the data plane (a short jittered default)."""
    connection_errors: bool = True


@attrs.frozen(kw_only=True)
class PluginFilter:
    """A filter contributed by a plugin (an HTTPRoute ExtensionRef): ``name`` picks the factory."""

    name: str
    """``group/kind/namespace/name`` of the ExtensionRef target."""
    config: str = "{}"
    """The target object's ``spec`` as canonical JSON (sorted keys), for the filter factory to read."""


@attrs.frozen(kw_only=True)
class WeightedCluster:
    """One backendRef of a rule. ``cluster`` ``None`` means the ref is invalid: its share answers 500."""

    cluster: str | None
    weight: int = attrs.field(default=1, validator=v.ge(0))
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None


@attrs.frozen(kw_only=True)
class HttpRoute:
    """One match of one rule of an HTTPRoute (or GRPCRoute), with everything needed to serve it.

    Filters apply in this order: CORS, request header modifier, redirect (answers), rewrite, mirrors,
    then the weighted backend with its own header modifiers, then the response header modifier.
    """

    name: str
    """Unique within its virtual host: ``kind/namespace/name/rule/match``, used in metrics and access logs."""
    route: str
    """``Kind/namespace/name`` of the object this came from."""
    rule_name: str | None = None
    match: HttpMatch = HttpMatch()
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    mirrors: tuple[Mirror, ...] = ()
    cors: Cors | None = None
    plugin_filters: tuple[PluginFilter, ...] = ()
    backends: tuple[WeightedCluster, ...] = ()
    direct_status: int | None = None
    """Answer locally with this status (e.g. 500 when the rule has no usable backend), unless ``redirect``."""
    timeouts: Timeouts | None = None
    retry: Retry | None = None
    grpc: bool = False
    """Came from a GRPCRoute: local answers are gRPC errors (status 200 with ``grpc-status``)."""
