"""How the HTTP/1.1 upstream classifies response field names (hop-by-hop and framing fields, any case)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nantian.proxy import upstream_http1
from nantian.proxy._http1 import HOP_BY_HOP

SPECIAL = {
    b"connection": upstream_http1._CONNECTION,
    b"transfer-encoding": upstream_http1._TRANSFER_ENCODING,
    b"content-length": upstream_http1._CONTENT_LENGTH,
}


def _expected(name: bytes) -> int:
    lower = name.lower()
    if lower in SPECIAL:
        return SPECIAL[lower]
    return upstream_http1._HOP if lower.decode("latin-1") in HOP_BY_HOP else upstream_http1._PLAIN


def test_every_hop_by_hop_and_framing_name_in_any_case() -> None:
    names = [n.encode() for n in HOP_BY_HOP] + list(SPECIAL)
    assert len(names) > 8
    for name in names:
        for variant in (name, name.upper(), name.title(), name.capitalize()):
            assert upstream_http1._field_kind(variant) == _expected(variant), variant


def test_ordinary_names_are_plain() -> None:
    for name in (b"Server", b"Date", b"Content-Type", b"ETag", b"X-Connection", b"Connections", b"Content-Lengths"):
        assert upstream_http1._field_kind(name) == upstream_http1._PLAIN, name


@given(st.binary(min_size=1, max_size=40).filter(lambda b: b":" not in b))
def test_any_name_agrees_with_a_plain_lookup(name: bytes) -> None:
    assert upstream_http1._field_kind(name) == _expected(name)
