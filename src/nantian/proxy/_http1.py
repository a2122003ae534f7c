"""HTTP/1.1 wire helpers: hop-by-hop headers, head encoding, chunk framing, status phrases, and how the pieces of
a message are handed to a transport (:func:`write_parts`)."""

from __future__ import annotations

import asyncio
import http
from typing import Final

from nantian.proxy.exchange import Headers

__all__ = [
    "HOP_BY_HOP",
    "LAST_CHUNK",
    "decode_fields",
    "encode_chunk",
    "encode_request_head",
    "encode_response_head",
    "end_to_end",
    "status_line",
    "write_parts",
]

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
"""Headers that describe one connection and are never forwarded (RFC 9110 section 7.6.1)."""

LAST_CHUNK: Final = b"0\r\n\r\n"

_STATUS_LINES: Final[dict[int, bytes]] = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode("latin-1") for s in http.HTTPStatus
}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 200 OK\\r\\n`` (unknown codes get an empty reason phrase)."""
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} \r\n".encode("latin-1")


_PLAIN_CONNECTION_TOKENS: Final = frozenset({"keep-alive", "close", "upgrade"})


def end_to_end(headers: Headers) -> Headers:
    """``headers`` without hop-by-hop fields, including any named in ``connection`` (``te: trailers`` is kept)."""
    named: set[str] | None = None
    hop = False
    for k, v in headers:
        if k in HOP_BY_HOP:
            hop = True
            if k == "connection":
                lowered = v.lower()
                if lowered not in _PLAIN_CONNECTION_TOKENS:
                    tokens = {t.strip() for t in lowered.split(",")} - _PLAIN_CONNECTION_TOKENS
                    if tokens:
                        named = tokens if named is None else named | tokens
    if not hop:
        return headers
    if named is None:
        return [h for h in headers if h[0] not in HOP_BY_HOP or (h[0] == "te" and h[1].strip().lower() == "trailers")]
    return [
        (k, v)
        for k, v in headers
        if k not in named and (k not in HOP_BY_HOP or (k == "te" and v.strip().lower() == "trailers"))
    ]


def decode_fields(block: bytes) -> Headers:
    """Encoded header lines (``Name: value\r\n``...) as headers (lower-case names)."""
    headers: Headers = []
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.lower(), value.strip(" \t")))
    return headers


def _fields(headers: Headers) -> str:
    """``name: value\r\n`` for every field (``": ".join`` on the tuples runs in C)."""
    if not headers:
        return ""
    return "\r\n".join(map(": ".join, headers)) + "\r\n"


def encode_response_head(status: int, headers: Headers, framing: str) -> bytes:
    """Status line, ``headers`` and the front end's own ``framing`` lines (already ``\r\n``-terminated)."""
    return status_line(status) + f"{_fields(headers)}{framing}\r\n".encode("latin-1")


def encode_request_head(method: str, target: str, authority: str, headers: Headers, framing: str) -> bytes:
    """Request line, ``host``, ``headers`` and ``framing`` lines."""
    return f"{method} {target} HTTP/1.1\r\nhost: {authority}\r\n{_fields(headers)}{framing}\r\n".encode("latin-1")


def encode_chunk(data: bytes) -> list[bytes]:
    """One chunk of a chunked body (``data`` must not be empty)."""
    return [b"%x\r\n" % len(data), data, b"\r\n"]


COALESCE_LIMIT: Final = 16384
"""Pieces of a message up to this many bytes in all are joined before they are written."""


def write_parts(transport: asyncio.WriteTransport, parts: list[bytes]) -> None:
    """Write ``parts`` (a head and a body, say) in one go.

    Small messages are joined into one buffer: uvloop sends a single buffer straight away with a ``write`` system
    call, while several cost a write-context object and a ``writev`` per call (more than copying a few hundred
    bytes). Large ones go as they are (no copy)."""
    size = 0
    for part in parts:
        size += len(part)
    if size <= COALESCE_LIMIT:
        transport.write(b"".join(parts))
    else:
        transport.writelines(parts)
