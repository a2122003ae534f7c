"""WebSocket handshakes in the proxy: the HTTP/1.1 Upgrade and its HTTP/2 form, extended CONNECT (RFC 8441).

An HTTP/1.1 client upgrades with ``GET`` + ``connection: upgrade`` + ``upgrade: websocket``; the core forwards that
to the backend and, on ``101``, relays bytes both ways (:mod:`nantian.proxy.tunnel`). An HTTP/2 client instead
sends ``CONNECT`` with ``:protocol: websocket`` on one stream (allowed once the server announced
SETTINGS_ENABLE_CONNECT_PROTOCOL) and expects ``200``; the WebSocket frames then travel as the stream's DATA. Backends
only speak the HTTP/1.1 form, so the HTTP/2 front end translates: :func:`upgrade_request_from_connect` makes the
backend request (with a fresh ``sec-websocket-key``, which RFC 8441 clients do not send), and
:func:`connect_response_headers` makes the ``200`` head from the backend's ``101``. Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import os

from nantian.proxy.exchange import Headers, RequestHead

__all__ = [
    "WEBSOCKET_GUID",
    "accept_key",
    "connect_response_headers",
    "is_extended_connect",
    "upgrade_request_from_connect",
]

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Fields of the HTTP/1.1 handshake that have no meaning on an HTTP/2 stream (RFC 8441 section 5).
_HTTP1_ONLY = frozenset({"connection", "upgrade", "sec-websocket-key", "sec-websocket-accept", "keep-alive"})


def accept_key(key: str) -> str:
    """The ``sec-websocket-accept`` a server answers to ``sec-websocket-key`` ``key`` (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode("ascii")).digest()).decode("ascii")


def is_extended_connect(method: str, protocol: str | None) -> bool:
    """Whether an HTTP/2 request is a WebSocket extended CONNECT."""
    return method == "CONNECT" and protocol is not None and protocol.lower() == "websocket"


def upgrade_request_from_connect(head: RequestHead, *, key: str | None = None) -> RequestHead:
    """The HTTP/1.1 upgrade request for an HTTP/2 WebSocket CONNECT: ``GET`` with ``upgrade``/``connection`` and a
    ``sec-websocket-key`` (random unless ``key`` is given); ``sec-websocket-version`` defaults to 13.

    Other fields (``sec-websocket-protocol``, ``sec-websocket-extensions``, ``origin``, cookies ...) pass unchanged.
    """
    headers: Headers = [(n, v) for n, v in head.headers if n not in _HTTP1_ONLY]
    if not any(n == "sec-websocket-version" for n, _ in headers):
        headers.append(("sec-websocket-version", "13"))
    headers += [
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", key or base64.b64encode(os.urandom(16)).decode("ascii")),
    ]
    return RequestHead(
        method="GET",
        target=head.target,
        authority=head.authority,
        scheme=head.scheme,
        headers=headers,
        http_version=head.http_version,
        client=head.client,
        sni_section=head.sni_section,
        sni=head.sni,
    )


def connect_response_headers(headers: Headers) -> Headers:
    """The headers of the HTTP/2 ``200`` that accepts a WebSocket CONNECT, from the backend's ``101`` headers."""
    return [(n, v) for n, v in headers if n not in _HTTP1_ONLY]
