"""The HTTP/1.1 front end against malformed, oversized, slow and pipelined clients (raw sockets)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from http1_harness import Upstream, cluster, free_port, listener, raw_exchange, route, running, snapshot, status_of

from nantian.proxy.asyncio_http1 import Http1Options

BAD_REQUESTS = {
    "content-length and transfer-encoding": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    ),
    "conflicting content-length": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "bad chunk size": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "invalid header name": b"GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n",
    "space before colon": b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n",
    "invalid header value": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    "negative content-length": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    "unknown transfer-encoding": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    "missing host": b"GET / HTTP/1.1\r\n\r\n",
    "two hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "bare LF": b"GET / HTTP/1.1\nHost: a\n\n",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n",
    "HTTP/0.9": b"GET /\r\n\r\n",
}


@contextlib.asynccontextmanager
async def _proxy(**options: object):  # type: ignore[no-untyped-def]
    async with Upstream() as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap, **options) as rt:
            yield port, up, rt


async def test_malformed_requests_get_400_and_the_connection_closes() -> None:
    async with _proxy() as (port, up, rt):
        for name, data in BAD_REQUESTS.items():
            out = await raw_exchange(port, data, wait=3)
            assert status_of(out) == 400, name
            assert b"connection: close" in out.lower(), name
        assert up.seen == []  # nothing malformed reached the backend
        assert rt.counters()["bad_requests"] == len(BAD_REQUESTS)


async def test_http2_version_on_http1_gets_505() -> None:
    async with _proxy(http2_cleartext=False) as (port, _up, _rt):
        assert status_of(await raw_exchange(port, b"GET / HTTP/2.0\r\nHost: a\r\n\r\n")) == 505


async def test_oversize_uri_414_and_oversize_head_431() -> None:
    opts = Http1Options(max_uri=1024, max_head=4096)
    async with _proxy(http1=opts) as (port, up, _rt):
        out = await raw_exchange(port, b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(out) == 414
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(60))
        out = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")
        assert status_of(out) == 431
        # a head that never ends is cut off too, even when it arrives in small pieces
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: ")
        for _ in range(10):
            writer.write(b"v" * 1000)
            await asyncio.sleep(0)
        async with asyncio.timeout(3):
            data = await reader.read()
        writer.close()
        assert status_of(data) == 431
        assert up.seen == []


async def test_slow_header_is_timed_out_and_idle_connections_close() -> None:
    opts = Http1Options(header_timeout=0.3, idle_timeout=0.5)
    async with _proxy(http1=opts, sweep_interval=0.05) as (port, _up, _rt):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHo")
        async with asyncio.timeout(3):
            data = await reader.read()
        assert status_of(data) == 408
        writer.close()
        # idle keep-alive connection: closed after the idle timeout, after a served request
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with asyncio.timeout(3):
            data = await reader.read()  # the response, then EOF at the idle timeout
        assert status_of(data) == 200
        assert loop.time() - t0 >= 0.4
        writer.close()


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with _proxy() as (port, _up, _rt):
        data = b"".join(
            b"GET /delay/%s/%d HTTP/1.1\r\nHost: a\r\n\r\n" % (b"0.05" if i == 0 else b"0", i) for i in range(5)
        )
        data += b"POST /body HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        data += b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        out = await raw_exchange(port, data)
        assert out.count(b"HTTP/1.1 200") == 7
        order = [out.find(b"/delay/0.05/0"), *[out.find(b"/delay/0/%d" % i) for i in range(1, 5)]]
        assert order == sorted(order) and -1 not in order
        assert out.find(b'"body": "hello"') > order[-1]
        assert out.rfind(b"/last") > out.find(b'"body": "hello"')


async def test_many_pipelined_requests_in_one_write_are_not_an_oversize_head() -> None:
    async with _proxy(http1=Http1Options(max_head=4096)) as (port, up, _rt):
        data = b"GET /p HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * 100 + b"\r\n\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data * 99 + b"GET /p HTTP/1.1\r\nHo")  # the chunk ends inside the 100th head
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"st: a\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(5):
            out = await reader.read(-1)
        writer.close()
        assert out.count(b"HTTP/1.1 200") == 100
        assert len(up.seen) == 100


async def test_connection_close_and_http10() -> None:
    async with _proxy() as (port, _up, _rt):
        out = await raw_exchange(port, b"GET / HTTP/1.0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200") and b"connection: close" in out.lower()
        out = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert status_of(out) == 200


async def test_chunked_request_and_expect_continue() -> None:
    async with _proxy() as (port, up, _rt):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\n\r\n"
        )
        async with asyncio.timeout(3):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100")
        writer.write(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        async with asyncio.timeout(3):
            out = await reader.read()
        writer.close()
        assert status_of(out) == 200
        assert up.seen[0].body == b"hello world"
        assert not any(k in ("expect", "transfer-encoding") and v == "chunked" for k, v in up.seen[0].headers[:0])


async def test_head_request_has_no_body() -> None:
    async with _proxy() as (port, _up, _rt):
        out = await raw_exchange(
            port, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        assert out.count(b"HTTP/1.1 200") == 2
        assert b"/after" in out


async def test_connection_limit() -> None:
    async with _proxy(max_connections=2) as (port, _up, rt):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        for _, w in held:
            w.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        for r, _ in held:
            async with asyncio.timeout(3):
                assert status_of(await r.readuntil(b"\r\n\r\n")) == 200
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(3):
            assert await reader.read() == b""  # refused: closed at once
        writer.close()
        assert rt.counters()["connections_refused"] == 1
        for _, w in held:
            w.close()


async def test_client_disconnect_mid_response_does_not_break_the_proxy() -> None:
    async with _proxy() as (port, _up, _rt):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /chunks/50 HTTP/1.1\r\nHost: a\r\n\r\n")
        await reader.read(10)
        writer.transport.abort()
        await asyncio.sleep(0.1)
        out = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert status_of(out) == 200


@pytest.mark.parametrize("absolute", [b"http://a/x?y=1"])
async def test_absolute_form_target(absolute: bytes) -> None:
    async with _proxy() as (port, up, _rt):
        out = await raw_exchange(port, b"GET " + absolute + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert status_of(out) == 200
        assert up.seen[0].target == "/x?y=1"
