"""WebSocket handshake translation between HTTP/2 extended CONNECT and the HTTP/1.1 upgrade."""

from __future__ import annotations

import base64

from nantian.proxy.exchange import RequestHead
from nantian.proxy.websocket import (
    accept_key,
    connect_response_headers,
    is_extended_connect,
    upgrade_request_from_connect,
)


def test_accept_key_matches_rfc6455_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_is_extended_connect() -> None:
    assert is_extended_connect("CONNECT", "websocket")
    assert is_extended_connect("CONNECT", "WebSocket")
    assert not is_extended_connect("CONNECT", None)
    assert not is_extended_connect("GET", "websocket")
    assert not is_extended_connect("CONNECT", "connect-udp")


def _connect(*headers: tuple[str, str]) -> RequestHead:
    return RequestHead(
        method="CONNECT",
        target="/chat?room=1",
        authority="chat.example",
        scheme="https",
        headers=list(headers),
        http_version="2",
        client=("127.0.0.1", 5000),
        sni_section="ns/gw/https",
        sni="chat.example",
    )


def test_upgrade_request_from_connect() -> None:
    head = _connect(("sec-websocket-protocol", "chat"), ("origin", "https://chat.example"), ("upgrade", "bogus"))
    up = upgrade_request_from_connect(head, key="a2V5a2V5a2V5a2V5a2V5aw==")
    assert (up.method, up.target, up.authority, up.scheme) == ("GET", "/chat?room=1", "chat.example", "https")
    assert up.headers == [
        ("sec-websocket-protocol", "chat"),
        ("origin", "https://chat.example"),
        ("sec-websocket-version", "13"),
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "a2V5a2V5a2V5a2V5a2V5aw=="),
    ]
    assert (up.client, up.sni_section, up.sni) == (head.client, head.sni_section, head.sni)


def test_generated_keys_are_fresh_16_byte_nonces() -> None:
    keys = {upgrade_request_from_connect(_connect()).header("sec-websocket-key") for _ in range(5)}
    assert len(keys) == 5
    assert all(k is not None and len(base64.b64decode(k)) == 16 for k in keys)


def test_client_version_is_kept() -> None:
    up = upgrade_request_from_connect(_connect(("sec-websocket-version", "8")))
    assert up.header("sec-websocket-version") == "8"
    assert [n for n, _ in up.headers].count("sec-websocket-version") == 1


def test_connect_response_headers_drop_http1_handshake_fields() -> None:
    headers = [
        ("upgrade", "websocket"),
        ("connection", "upgrade"),
        ("sec-websocket-accept", "x"),
        ("sec-websocket-protocol", "chat"),
        ("x-backend", "1"),
    ]
    assert connect_response_headers(headers) == [("sec-websocket-protocol", "chat"), ("x-backend", "1")]
