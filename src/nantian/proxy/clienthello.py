"""TLS passthrough, sans-IO: what a ClientHello asks for (SNI, ALPN) without terminating it, and the route for it.

:func:`peek_client_hello` reads the SNI and ALPN of a ClientHello; :func:`select_stream_route` picks the TLSRoute
for that SNI. The stream proxy uses both.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from nantian.errors import RemoteProtocolError
from nantian.ir import StreamRoute
from nantian.proxy.sni import hostname_matches, normalize, specificity

__all__ = ["MAX_CLIENT_HELLO", "ClientHello", "peek_client_hello", "select_stream_route"]


MAX_CLIENT_HELLO = 1 << 16
"""Bytes :func:`peek_client_hello` waits for at most before giving up on a ClientHello."""


@attrs.frozen(kw_only=True)
class ClientHello:
    """The routing-relevant parts of a TLS ClientHello (for TLSRoute passthrough)."""

    server_name: str | None
    """The SNI host name, lower case, or ``None`` when the client sent none."""
    alpn: tuple[str, ...] = ()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise RemoteProtocolError("TLS: ClientHello field runs past its end")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> _Reader:
        return _Reader(self.take(self.uint(length_bytes)))

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def peek_client_hello(data: bytes) -> ClientHello | None:
    """Parse the ClientHello at the start of a TLS connection, without consuming or answering anything.

    Sans-IO: call it with everything received so far; forward the same bytes to the chosen backend afterwards.

    :returns: The ClientHello, or ``None`` when more bytes are needed (it may span several TLS records).
    :raises RemoteProtocolError: the bytes are not a TLS ClientHello, or it is larger than :data:`MAX_CLIENT_HELLO`.
    """
    handshake = b""
    pos = 0
    while True:
        if len(data) - pos < 5:
            _check_size(data)
            return None
        content_type, major, length = data[pos], data[pos + 1], int.from_bytes(data[pos + 3 : pos + 5], "big")
        if content_type != 0x16 or major != 3:
            raise RemoteProtocolError("TLS: not a handshake record")
        if len(data) - pos - 5 < length:
            _check_size(data)
            return None
        handshake += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if len(handshake) >= 4:
            if handshake[0] != 0x01:
                raise RemoteProtocolError("TLS: the first handshake message is not a ClientHello")
            body_length = int.from_bytes(handshake[1:4], "big")
            if len(handshake) - 4 >= body_length:
                return _parse_client_hello(_Reader(handshake[4 : 4 + body_length]))


def _check_size(data: bytes) -> None:
    if len(data) > MAX_CLIENT_HELLO:
        raise RemoteProtocolError("TLS: ClientHello too large")


def _parse_client_hello(r: _Reader) -> ClientHello:
    r.take(2 + 32)  # legacy_version, random
    r.vector(1)  # legacy_session_id
    r.vector(2)  # cipher_suites
    r.vector(1)  # legacy_compression_methods
    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    if r.left == 0:
        return ClientHello(server_name=None)
    extensions = r.vector(2)
    while extensions.left:
        kind = extensions.uint(2)
        body = extensions.vector(2)
        if kind == 0x0000:  # server_name
            names = body.vector(2)
            while names.left:
                name_type = names.uint(1)
                raw = names.vector(2).data
                if name_type == 0 and server_name is None:
                    server_name = _host_name(raw)
        elif kind == 0x0010:  # application_layer_protocol_negotiation
            protocols = body.vector(2)
            found: list[str] = []
            while protocols.left:
                found.append(protocols.vector(1).data.decode("ascii", "replace"))
            alpn = tuple(found)
    return ClientHello(server_name=server_name, alpn=alpn)


def _host_name(raw: bytes) -> str:
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError("TLS: SNI host name is not ASCII") from exc
    if not name or any(c.isspace() or c == "/" for c in name):
        raise RemoteProtocolError("TLS: invalid SNI host name")
    return normalize(name)


def select_stream_route(routes: Iterable[StreamRoute], server_name: str | None) -> StreamRoute | None:
    """The TLS route for a connection whose ClientHello named ``server_name``: exact hostnames first, then the
    longest wildcard, then a route without hostnames (it takes any SNI); ``None`` when nothing matches."""
    best: tuple[tuple[int, int], StreamRoute] | None = None
    for route in routes:
        if not route.hostnames:
            candidate = ((-1, 0), route)
        elif server_name is None:
            continue
        else:
            matching = [h for h in route.hostnames if hostname_matches(h, server_name)]
            if not matching:
                continue
            candidate = (max(specificity(h) for h in matching), route)
        if best is None or candidate[0] > best[0]:
            best = candidate
    return best[1] if best is not None else None
