"""HTTP filters: the :class:`HttpFilter` protocol plugins implement, and the built-in route filters.

Plugin filters come from the ``nantian_http_filters`` hook, called once per (route, ExtensionRef) when a snapshot is
compiled. Per request, ``on_request`` runs after the built-in request filters (CORS, header modifier) and before
redirect/rewrite/forwarding; it may change the request head or answer locally. ``on_response`` runs on the response
head before it is sent downstream. Bodies stream through untouched. A filter that raises answers 500 for that request
(counted in ``nantian_proxy_filter_errors_total``); the proxy carries on.
"""

from __future__ import annotations

import re
from typing import Protocol

import attrs

from nantian.ir import Cors, Redirect
from nantian.proxy.exchange import Headers
from nantian.proxy.header_edits import RawHeaderEdit, apply_header_modifier, raw_header_edit, replace_path

__all__ = [
    "FilterRequest",
    "FilterResponse",
    "HttpFilter",
    "LocalResponse",
    "RawHeaderEdit",
    "apply_header_modifier",
    "cors_preflight",
    "cors_response_headers",
    "raw_header_edit",
    "redirect_location",
    "replace_path",
]


@attrs.define(slots=True)
class FilterRequest:
    """The request as filters see and change it. ``target`` is ``/path?query``; ``headers`` exclude ``host``."""

    method: str
    target: str
    authority: str
    scheme: str
    headers: Headers
    client: tuple[str, int] | None
    route: str
    """The IR route name that matched."""


@attrs.define(slots=True)
class FilterResponse:
    """The response head as filters see and change it."""

    status: int
    headers: Headers


@attrs.define(slots=True)
class LocalResponse:
    """An answer made by the proxy instead of the backend."""

    status: int
    headers: Headers = attrs.Factory(list)
    body: bytes = b""


class HttpFilter(Protocol):
    """A per-route request/response filter. Implementations must not block the event loop."""

    async def on_request(self, request: FilterRequest) -> LocalResponse | None:
        """Inspect or change ``request``; return a :class:`LocalResponse` to answer without forwarding."""
        ...

    async def on_response(self, request: FilterRequest, response: FilterResponse) -> None:
        """Inspect or change the response head before it goes downstream."""
        ...


_DEFAULT_PORTS = {"http": 80, "https": 443}


def redirect_location(
    redirect: Redirect,
    *,
    scheme: str,
    host: str,
    listener_port: int,
    path: str,
    query: str,
    matched_prefix: str | None,
) -> str:
    """The ``Location`` of a Gateway API RequestRedirect.

    Port: the configured one; else the well-known port of a configured scheme; else the listener's port. The port is
    left out when it is the default for the resulting scheme (80 for http, 443 for https).
    """
    new_scheme = redirect.scheme or scheme
    new_host = redirect.hostname or host
    if redirect.port is not None:
        port = redirect.port
    elif redirect.scheme is not None:
        port = _DEFAULT_PORTS.get(new_scheme, listener_port)
    else:
        port = listener_port
    new_path = replace_path(path, redirect.path, matched_prefix) if redirect.path is not None else path
    if ":" in new_host and not new_host.startswith("["):
        new_host = f"[{new_host}]"
    hostport = new_host if _DEFAULT_PORTS.get(new_scheme) == port else f"{new_host}:{port}"
    location = f"{new_scheme}://{hostport}{new_path}"
    return f"{location}?{query}" if query else location


def _origin_allowed(cors: Cors, origin: str) -> bool:
    for allowed in cors.allow_origins:
        if allowed == "*" or allowed == origin:
            return True
        if "*" in allowed:
            pattern = "^" + ".*".join(re.escape(part) for part in allowed.split("*")) + "$"
            if re.match(pattern, origin):
                return True
    return False


def _allow_origin_value(cors: Cors, origin: str) -> str:
    return "*" if "*" in cors.allow_origins and not cors.allow_credentials else origin


def cors_preflight(cors: Cors, method: str, headers: Headers) -> LocalResponse | None:
    """The local answer to a CORS preflight (``OPTIONS`` with ``origin`` and ``access-control-request-method``).

    ``None`` when the request is not a preflight. A preflight from an origin that is not allowed is answered 200
    without CORS headers (the browser then refuses the actual request).
    """
    if method != "OPTIONS":
        return None
    origin = next((v for k, v in headers if k == "origin"), None)
    requested = next((v for k, v in headers if k == "access-control-request-method"), None)
    if origin is None or requested is None:
        return None
    out: Headers = []
    if _origin_allowed(cors, origin):
        out.append(("access-control-allow-origin", _allow_origin_value(cors, origin)))
        # with credentials a "*" is taken literally by browsers: echo what the preflight asks for instead
        echo = cors.allow_credentials
        if cors.allow_methods:
            methods = requested if echo and "*" in cors.allow_methods else ", ".join(cors.allow_methods)
            out.append(("access-control-allow-methods", methods))
        asked_headers = next((v for k, v in headers if k == "access-control-request-headers"), None)
        if cors.allow_headers:
            allowed = ", ".join(cors.allow_headers)
            if echo and "*" in cors.allow_headers:
                allowed = asked_headers or ""
            if allowed:
                out.append(("access-control-allow-headers", allowed))
        if cors.max_age is not None:
            out.append(("access-control-max-age", str(cors.max_age)))
        if cors.allow_credentials:
            out.append(("access-control-allow-credentials", "true"))
        if cors.expose_headers:
            out.append(("access-control-expose-headers", ", ".join(cors.expose_headers)))
        if "*" in cors.allow_origins:
            out.append(("vary", "origin"))
    return LocalResponse(200, out)


def cors_response_headers(cors: Cors, origin: str | None) -> Headers:
    """CORS headers to add to a (non-preflight) response for a request from ``origin``."""
    if origin is None or not _origin_allowed(cors, origin):
        return []
    out: Headers = [("access-control-allow-origin", _allow_origin_value(cors, origin))]
    if cors.allow_credentials:
        out.append(("access-control-allow-credentials", "true"))
    if cors.expose_headers:
        out.append(("access-control-expose-headers", ", ".join(cors.expose_headers)))
    return out
