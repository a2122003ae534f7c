"""Property: whatever bytes a client sends, fed whole or byte by byte, the HTTP/1.1 front end answers or closes and
never raises (a fake transport, no sockets)."""

from __future__ import annotations

import asyncio
import logging

from hypothesis import given, settings
from hypothesis import strategies as st

from nantian.proxy.asyncio_http1 import Http1Server
from nantian.proxy.exchange import Exchange, ListenerRef
from nantian.testing.memory_transport import MemoryTransport


class _Ok:
    async def handle(self, exchange: Exchange) -> None:
        while await exchange.body.read():
            pass
        await exchange.response.start(200, [("content-length", "2")])
        await exchange.response.send(b"ok")
        await exchange.response.end()


PIECES = [
    b"GET / HTTP/1.1\r\n",
    b"POST /x HTTP/1.1\r\n",
    b"Host: a\r\n",
    b"Content-Length: 3\r\n",
    b"Content-Length: 4\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Connection: close\r\n",
    b"X-A: b\r\n c\r\n",
    b"Expect: 100-continue\r\n",
    b"\r\n",
    b"abc",
    b"3\r\nabc\r\n0\r\n\r\n",
    b"zz\r\n",
    b"\x00\xff",
    b" ",
]


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def _run(data: bytes, byte_by_byte: bool) -> MemoryTransport:
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    try:
        transport = await _feed(data, byte_by_byte)
    finally:
        logging.getLogger().removeHandler(errors)
    assert [r.getMessage() for r in errors.records] == []
    return transport


async def _feed(data: bytes, byte_by_byte: bool) -> MemoryTransport:
    transport = MemoryTransport(can_write_eof=False)
    server = Http1Server(ListenerRef(name="l", current=_Ok()))
    server.connection_made(transport)  # type: ignore[arg-type]
    chunks = [data[i : i + 1] for i in range(len(data))] if byte_by_byte else [data]
    for chunk in chunks:
        if transport.closed:
            break
        server.data_received(chunk)
        await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)
    server.connection_lost(None)
    await asyncio.sleep(0)
    return transport


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(st.binary(max_size=200), st.lists(st.sampled_from(PIECES), max_size=12).map(b"".join)),
    st.booleans(),
)
def test_front_end_never_raises(data: bytes, byte_by_byte: bool) -> None:
    transport = asyncio.run(_run(data, byte_by_byte))
    out = b"".join(transport.written)
    if out:
        assert out.startswith(b"HTTP/1.1 ")
        for status in out.split(b"HTTP/1.1 ")[1:]:
            assert status[:3].isdigit()


def test_whole_and_byte_by_byte_give_the_same_answers() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
    whole = b"".join(asyncio.run(_run(data, False)).written)
    split = b"".join(asyncio.run(_run(data, True)).written)
    assert whole == split and whole.count(b"HTTP/1.1 200") == 2
